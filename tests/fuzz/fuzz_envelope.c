/* Fuzz target: the bus envelope decoder, exactly as the receive path calls it. */
#include <stdint.h>
#include <stddef.h>
#include "skein/sk_bus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Skein__Bus__V1__Envelope *env = sk_bus_decode(data, size);

	if (env) {
		/* Touch what dispatch reads. */
		volatile size_t n = env->trace_id.len;
		if (env->body_case == SKEIN__BUS__V1__ENVELOPE__BODY_NODE_EVENT && env->node_event &&
		    env->node_event->node && env->node_event->node->id)
			n += env->node_event->node->id[0];
		(void)n;
		skein__bus__v1__envelope__free_unpacked(env, NULL);
	}
	return 0;
}
