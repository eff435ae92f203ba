/* libFuzzer target for sk_http_parse: the input is one or more request bytes as
 * they might arrive on the admin port. Besides crashes it checks what the server
 * relies on: the result stays within the input, header pointers point into it, and
 * "need more" leaves the buffer untouched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_http.h"

static void check(const char *buf, size_t size, long rc, const struct sk_http_parsed *p)
{
	if (rc == 0 || rc < 0) {
		if (rc < 0 && rc != -400 && rc != -413 && rc != -414 && rc != -431 && rc != -501)
			abort();
		return;
	}
	if ((size_t)rc > size || p->head_len > (size_t)rc ||
	    p->head_len + p->content_length != (size_t)rc || p->nhdr > 32)
		abort();
	if (!memchr(p->method, '\0', sizeof(p->method)) ||
	    !memchr(p->target, '\0', sizeof(p->target)))
		abort();
	for (size_t i = 0; i < p->nhdr; i++) {
		const char *n = p->hdr[i].name, *v = p->hdr[i].value;

		if (n < buf || n >= buf + p->head_len || v < buf || v >= buf + p->head_len)
			abort();
		if (strlen(n) == 0 || n + strlen(n) >= buf + p->head_len ||
		    v + strlen(v) >= buf + p->head_len)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[][2] = {{8192, 65536}, {64, 16}};
	struct sk_http_parsed p;
	char *buf, *orig;

	/* A heap copy of exactly size bytes, so any over-read is caught. */
	buf = malloc(size ? size : 1);
	orig = malloc(size ? size : 1);
	if (!buf || !orig)
		abort();
	memcpy(orig, data, size);
	for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
		long rc;

		memcpy(buf, data, size);
		rc = sk_http_parse(buf, size, limits[k][0], limits[k][1], &p);
		check(buf, size, rc, &p);
		if (rc == 0 && size && memcmp(buf, orig, size))
			abort();
		/* What was consumed parses the same on its own. */
		if (rc > 0) {
			long rc2;

			memcpy(buf, data, (size_t)rc);
			rc2 = sk_http_parse(buf, (size_t)rc, limits[k][0], limits[k][1], &p);
			if (rc2 != rc)
				abort();
		}
	}
	free(buf);
	free(orig);
	return 0;
}
