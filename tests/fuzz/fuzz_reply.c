/* libFuzzer target for what Skein reads back from Redis (services/regdata): the
 * input is RESP, parsed by hiredis' reader as the daemons' client parses it, and the
 * reply goes through every decoder of the data model — the routing lookup's TIME and
 * HGETALL (regdata_lookup.h), the lookup script's pairs, the registration script's
 * result. Redis is trusted, but a wrong-shaped reply (another version, a key written
 * by hand, a proxy in between) must give an error, never a crash, a leak or a
 * binding that is already expired. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "skein/sk_mem.h"
#include "regdata.h"
#include "regdata_lookup.h"

/* hiredis 0.14's reader allocates a multi-bulk's element array from its header
 * before any element arrives (no maxelements until hiredis 1.0): a "*1350000000"
 * is an out-of-memory in hiredis, not in Skein, and Redis never sends it. */
static bool huge_array(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned long long v = 0;
		size_t k = i + 1;

		if (d[i] != '*')
			continue;
		while (k < n && d[k] >= '0' && d[k] <= '9' && v < 1000000)
			v = v * 10 + (d[k++] - '0');
		if (v > 4096)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd;
	void *reply = NULL;
	struct regdata_bindings bs;
	struct regdata_reg_result res;
	uint64_t ms, now = 1700000000000ull;

	if (size < 1 || huge_array(data + 1, size - 1))
		return 0;
	rd = redisReaderCreate();
	if (!rd)
		return 0;
	if (redisReaderFeed(rd, (const char *)data + 1, size - 1) == REDIS_OK &&
	    redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
		switch (data[0] % 4) {
		case 0:
			if (regdata_bindings_from_hash(&bs, reply, now, NULL) == 0) {
				for (size_t i = 0; i < bs.n; i++)
					if (bs.b[i]->expires_at_ms <= now || !bs.b[i]->expires_in)
						abort();
				regdata_bindings_free(&bs);
			}
			break;
		case 1:
			if (regdata_time_ms(reply, &ms) == 0 && ms == UINT64_MAX)
				abort(); /* (any value is fine; keeps ms used) */
			break;
		case 2:
			if (regdata_bindings_from_reply(&bs, reply, NULL) == 0)
				regdata_bindings_free(&bs);
			break;
		default:
			(void)regdata_register_result(&res, reply);
			regdata_reg_result_release(&res);
			break;
		}
		freeReplyObject(reply);
	}
	redisReaderFree(rd);
	return 0;
}
