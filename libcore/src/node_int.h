/* Private to membership: node.c (the live table) and node_list.c (one-shot reads). */
#ifndef SK_NODE_INT_H
#define SK_NODE_INT_H

#include "skein/sk_node.h"
#include "skein/cluster/v1/node.pb-c.h"

/* Copies what a NodeInfo holds; SK_ENOMEM leaves *i cleared. */
int sk_node_info_from_pb(struct sk_node_info *i, const Skein__Cluster__V1__NodeInfo *pb);
/* Releases the strings and zeroes *i. */
void sk_node_info_clear(struct sk_node_info *i);

#endif
