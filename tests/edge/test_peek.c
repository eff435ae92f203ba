/* sip_peek: the To-tag of an ACK without parsing (services/edge/sip_peek.h). Each case
 * says what the scan must answer; wherever it finds a tag and sofia-sip accepts the
 * same bytes, both must agree (as tests/fuzz/fuzz_sip.c checks on its corpus). The RFC
 * 4475 torture messages go through the same agreement check. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sk_test.h"
#include "sip_check.h"
#include "sip_peek.h"
#include <sofia-sip/sip_header.h>

static const char *rfc4475_dir;

#define TAG "0123456789abcdef"
#define HEAD                                                                                      \
	"ACK sip:bob@example.com SIP/2.0\r\n"                                                     \
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"                                     \
	"From: <sip:alice@example.com>;tag=a1\r\n"                                                \
	"Call-ID: c1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
#define TAIL "Content-Length: 0\r\n\r\n"

static const struct {
	const char *text, *tag; /* tag NULL: the scan must say "parse it" */
} cases[] = {
    {HEAD "To: <sip:bob@example.com>;tag=" TAG "\r\n" TAIL, TAG},
    {HEAD "t: <sip:bob@example.com>;tag=" TAG "\r\n" TAIL, TAG},		/* compact */
    {HEAD "TO : Bob <sip:bob@example.com>;x=1;TAG=" TAG ";y\r\n" TAIL, TAG}, /* case */
    {HEAD "To: sip:bob@example.com;tag=" TAG "\r\n" TAIL, TAG},		/* addr-spec */
    {HEAD "To:<sip:bob@example.com;tag=uri>;tag=" TAG "\r\n" TAIL, TAG}, /* URI param */
    {HEAD "To: <sip:bob@example.com>;tag=" TAG "\r\n" TAIL "v=0\r\n", TAG},  /* body */
    {HEAD "To: <sip:bob@example.com>\r\n" TAIL, NULL},			/* no tag */
    {HEAD "To: <sip:bob@example.com>;tag\r\n" TAIL, NULL},		/* no value */
    {HEAD "To: <sip:bob@example.com>;tag=\r\n" TAIL, NULL},
    {HEAD "To: <sip:bob@example.com>;tag=a;tag=b\r\n" TAIL, NULL},	/* two */
    {HEAD "To: <sip:bob@example.com> ;tag=" TAG "\r\n" TAIL, NULL},	/* whitespace */
    {HEAD "To: <sip:bob@example.com>;tag = " TAG "\r\n" TAIL, NULL},
    {HEAD "To: <sip:bob@example.com>;tag=" TAG " \r\n" TAIL, NULL},
    {HEAD "To: \"B>;tag=x\" <sip:bob@example.com>;tag=" TAG "\r\n" TAIL, NULL}, /* quotes */
    {HEAD "To: <sip:bob@example.com>;tag=" TAG "\r\n To: x\r\n" TAIL, NULL},  /* folded */
    {HEAD "To: <sip:bob@example.com>;tag=" TAG "\r\nt: <sip:c@d>\r\n" TAIL, NULL}, /* two To */
    {HEAD "To: <sip:bob@example.com>;tag=" TAG "\n" TAIL, NULL},	/* bare LF */
    {HEAD "To: <sip:bob@example.com>;tag=" TAG "\r\n", NULL},		/* no end */
    {HEAD "To: <sip:b<c@example.com>;tag=" TAG "\r\n" TAIL, NULL},
    {HEAD "To: <sip:bob@example.com>;tag=" TAG ",<sip:c@d>\r\n" TAIL, NULL},
    {HEAD "Tox: <sip:bob@example.com>;tag=" TAG "\r\n" TAIL, NULL},	/* not To */
    {"\r\n" HEAD "To: <sip:bob@example.com>;tag=" TAG "\r\n" TAIL, NULL},	/* leading CRLF */
    {"ack sip:bob@example.com SIP/2.0\r\nTo: <sip:b@c>;tag=" TAG "\r\n\r\n", NULL},
    {"INVITE sip:bob@example.com SIP/2.0\r\nTo: <sip:b@c>;tag=" TAG "\r\n\r\n", NULL},
    {"SIP/2.0 200 OK\r\nTo: <sip:b@c>;tag=" TAG "\r\n\r\n", NULL},
    {"", NULL},
    {"ACK", NULL},
};

/* Where sofia-sip accepts the bytes, it is an ACK with the tag the scan found; true
 * when it accepts them. */
static bool agrees(const char *text, size_t len, const char *tag, size_t tlen)
{
	struct edge_verdict v;
	msg_t *msg = NULL;
	sip_t *sip;

	assert_int_equal(edge_sip_check(text, len, EDGE_UDP, 65535, &msg, &v), 0);
	if (!msg)
		return false;
	sip = sip_object(msg);
	assert_non_null(sip->sip_request);
	assert_int_equal(sip->sip_request->rq_method, sip_method_ack);
	assert_non_null(sip->sip_to);
	assert_non_null(sip->sip_to->a_tag);
	assert_int_equal(strlen(sip->sip_to->a_tag), tlen);
	assert_memory_equal(sip->sip_to->a_tag, tag, tlen);
	msg_destroy(msg);
	return true;
}

static void test_cases(void **state)
{
	int accepted_by_both = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *text = cases[i].text, *tag = NULL;
		size_t n = 0;
		bool found = edge_sip_peek_ack_tag(text, strlen(text), &tag, &n);

		if (!cases[i].tag) {
			if (found)
				fail_msg("case %zu: a tag where there is doubt: %s", i, text);
			continue;
		}
		if (!found)
			fail_msg("case %zu: no tag found: %s", i, text);
		assert_int_equal(n, strlen(cases[i].tag));
		assert_memory_equal(tag, cases[i].tag, n);
		assert_true(tag > text && tag + n <= text + strlen(text)); /* into the input */
		accepted_by_both += agrees(text, strlen(text), tag, n);
	}
	assert_int_equal(accepted_by_both, 6);
	assert_false(edge_sip_peek_ack_tag(NULL, 0, &(const char *){0}, &(size_t){0}));
}

/* The torture messages: no ACK among them may make the scan and sofia-sip disagree.
 * Each is also turned into an ACK (its method replaced) to give the scan more to do. */
static void test_rfc4475_agree(void **state)
{
	DIR *d = opendir(rfc4475_dir);
	struct dirent *de;
	int files = 0;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[1024], *buf;
		FILE *f;
		long sz;

		if (!strstr(de->d_name, ".dat"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", rfc4475_dir, de->d_name);
		f = fopen(path, "rb");
		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc((size_t)sz + 8);
		assert_non_null(buf);
		memcpy(buf, "ACK", 3);
		assert_int_equal(fread(buf + 3, 1, (size_t)sz, f), (size_t)sz);
		fclose(f);
		for (int as_ack = 0; as_ack < 2; as_ack++) {
			/* as_ack: the first word of the message replaced by ACK */
			const char *text = buf + 3;
			size_t len = (size_t)sz, sp;
			const char *tag;
			size_t n;

			if (as_ack) {
				sp = strcspn(buf + 3, " \r\n");
				if (sp >= (size_t)sz || buf[3 + sp] != ' ')
					continue;
				memcpy(buf + sp, "ACK", 3);
				text = buf + sp;
				len = (size_t)sz - sp + 3;
			}
			if (edge_sip_peek_ack_tag(text, len, &tag, &n))
				agrees(text, len, tag, n);
		}
		free(buf);
		files++;
	}
	closedir(d);
	assert_true(files >= 40);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    SK_TEST(test_cases),
	    SK_TEST(test_rfc4475_agree),
	};

	rfc4475_dir = argc > 1 ? argv[1] : "../shared/rfc4475";
	return cmocka_run_group_tests(tests, NULL, NULL);
}
