/* What the registrar and skeinctl read: REGDATA_LUA_LOOKUP for an AOR of cluster "t",
 * run against the test redis-server (sk_test_redis.h, included before this), decoded.
 * Shared by test_lookup.c and test_regdata.c. */
#ifndef SKEIN_TEST_REGDATA_SCRIPT_H
#define SKEIN_TEST_REGDATA_SCRIPT_H
#include <stdio.h>
#include "regdata.h"

static void script_lookup(const char *aor, struct regdata_bindings *out)
{
	char k[3][256];
	redisReply *r;

	snprintf(k[0], sizeof(k[0]), "t:{%s}:reg", aor);
	snprintf(k[1], sizeof(k[1]), "t:{%s}:exp", aor);
	snprintf(k[2], sizeof(k[2]), "t:{%s}:meta", aor);
	r = srv_cmd("EVAL %s 3 %s %s %s", REGDATA_LUA_LOOKUP, k[0], k[1], k[2]);
	assert_non_null(r);
	assert_int_equal(regdata_bindings_from_reply(out, r, NULL), 0);
	freeReplyObject(r);
}

#endif
