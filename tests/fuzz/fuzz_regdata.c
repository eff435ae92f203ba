/* libFuzzer target for the subscriber data model (services/regdata/regdata.h): the
 * AOR and domain normalisers (their input is a client's To header), the Binding
 * decoder (what Redis hands back) and the REGISTER checks that turn a RegisterRequest
 * from the bus into a script call. The first byte picks the path. Besides crashes and
 * leaks it checks the contract: a normalised AOR never contains what would change its
 * Redis hash slot ('{', '}') and has a lower-case domain. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_mem.h"
#include "regdata.h"

static void norm(const uint8_t *d, size_t n, bool aor)
{
	char in[600], out[REGDATA_AOR_MAX];
	const char *why = NULL;

	if (n >= sizeof(in))
		n = sizeof(in) - 1;
	memcpy(in, d, n);
	in[n] = 0;
	if ((aor ? regdata_aor_norm(out, sizeof(out), in, &why)
		 : regdata_domain_norm(out, sizeof(out), in, &why)) != 0) {
		if (!why)
			abort();
		return;
	}
	if (strchr(out, '{') || strchr(out, '}') || strchr(out, ' '))
		abort();
	for (const char *p = aor ? strchr(out, '@') : out; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
}

static void reg(const uint8_t *d, size_t n)
{
	Skein__Sip__V1__RegisterRequest *rq = skein__sip__v1__register_request__unpack(NULL, n, d);
	struct regdata_policy pol = {3600, 60, 7200, 10};
	struct regdata_reg_result res;
	struct regdata_reg_cmd *cmd = NULL;

	if (!rq)
		return;
	if (regdata_register_prepare(&cmd, &res, "fuzz", rq, &pol) == 0 && !cmd &&
	    res.code != 400 && res.code != 423)
		abort();
	/* reg, exp, meta; and the digest's cred and nonce-count keys with auth */
	if (cmd && (cmd->nkeys != (rq->auth ? 5 : 3) || cmd->argc < 3))
		abort();
	sk_deref(cmd);
	regdata_reg_result_release(&res);
	skein__sip__v1__register_request__free_unpacked(rq, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Skein__Sip__V1__Binding *b;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: norm(data + 1, size - 1, true); break;
	case 1: norm(data + 1, size - 1, false); break;
	case 2:
		b = regdata_binding_decode(data + 1, size - 1);
		if (b)
			skein__sip__v1__binding__free_unpacked(b, NULL);
		break;
	default: reg(data + 1, size - 1); break;
	}
	return 0;
}
