/* regdata_ban: the cluster-wide ban set (issue 5), shared by skein-edge (writes the
 * automatic bans, mirrors the set in memory) and skeinctl (ban list|add|del).
 *
 *   <c>:{bans}:set   ZSET ip -> end of the ban (unix ms, Redis TIME)
 *   <c>:{bans}:info  HASH ip -> "<reason>\t<by>\t<added_ms>"
 *   <c>:{bans}:gen   STRING counter bumped by every change
 *
 * Edges poll gen (regdata_ban_sync_lua, one round trip, a few bytes when nothing
 * changed) every 250 ms and reload the set when it moved: a ban placed anywhere is
 * applied everywhere within a poll interval. Ended bans are purged by the writers. */
#ifndef SKEIN_REGDATA_BAN_H
#define SKEIN_REGDATA_BAN_H
#include <stddef.h>

#define REGDATA_IP_MAX 46 /* INET6_ADDRSTRLEN */

/* "<c>:{bans}:set|info|gen" into buf (which: "set", "info" or "gen"). */
int regdata_key_bans(char *buf, size_t size, const char *cluster, const char *which);
/* Canonical text of an IP address (inet_ntop of inet_pton; an IPv4-mapped IPv6
 * address becomes IPv4). 0, or SK_EINVAL when in is not an address. */
int regdata_ip_norm(char *out, size_t size, const char *in);

/* KEYS set, info, gen. ARGV ip, ttl_ms, reason, by. Returns {placed (1|0), end_ms}:
 * 0 when a ban ending later was already there (kept). */
extern const char regdata_ban_add_lua[];
/* KEYS set, info, gen. ARGV ip. Returns 1 when a ban was lifted, 0 when none. */
extern const char regdata_ban_del_lua[];
/* KEYS set, info, gen. ARGV gen seen ("" at first). Returns {gen} when unchanged,
 * else {gen, now_ms, {ip, end_ms, ip, end_ms, ...}} of the bans still running. */
extern const char regdata_ban_sync_lua[];

#endif
