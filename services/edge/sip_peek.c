/* sip_peek: what can be told of a datagram without parsing it (sip_peek.h). */
#include "sip_peek.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* RFC 3261 §25.1 token characters: alphanumerics and -.!%*_+`'~, one bit each. */
static bool is_token(unsigned char c)
{
	static const uint64_t set[2] = {0x03ff6ca200000000ull, 0x47ffffff87fffffeull};

	return c < 128 && (set[c >> 6] >> (c & 63) & 1);
}

/* The parameters after the address, ";name[=value]" each, nothing else in between:
 * the one tag's value, or false. */
static bool tag_param(const char *p, const char *end, const char **tag, size_t *tag_len)
{
	const char *found = NULL;
	size_t flen = 0;

	if (p == end)
		return false;
	while (p < end) {
		const char *s, *eq = NULL;

		if (*p++ != ';')
			return false;
		for (s = p; p < end && *p != ';'; p++) {
			if (*p == '=' && !eq)
				eq = p;
			else if (!is_token((unsigned char)*p))
				return false; /* whitespace, a second '=', a quote...: parse it */
		}
		if ((eq ? (size_t)(eq - s) : (size_t)(p - s)) != 3 || strncasecmp(s, "tag", 3))
			continue;
		if (found || !eq || eq + 1 == p)
			return false; /* two tags, or one without a value */
		found = eq + 1;
		flen = (size_t)(p - found);
	}
	if (!found)
		return false;
	*tag = found;
	*tag_len = flen;
	return true;
}

/* A To value: [display-name] <uri> params, or uri;params (RFC 3261 §20.39, §20.10:
 * without angle brackets every ';' starts a header parameter). */
static bool to_tag(const char *v, const char *end, const char **tag, size_t *tag_len)
{
	const char *lt, *gt;

	for (const char *p = v; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == ',' || c == 0x7f || (c < 0x20 && c != '\t'))
			return false;
	}
	lt = memchr(v, '<', (size_t)(end - v));
	if (!lt) {
		const char *semi = memchr(v, ';', (size_t)(end - v));

		if (!semi || memchr(v, '>', (size_t)(end - v)) ||
		    memchr(v, ' ', (size_t)(semi - v)) || memchr(v, '\t', (size_t)(semi - v)))
			return false;
		return tag_param(semi, end, tag, tag_len);
	}
	gt = memchr(lt, '>', (size_t)(end - lt));
	if (!gt || memchr(lt + 1, '<', (size_t)(gt - lt - 1)) ||
	    memchr(gt + 1, '<', (size_t)(end - gt - 1)) || memchr(gt + 1, '>', (size_t)(end - gt - 1)))
		return false;
	return tag_param(gt + 1, end, tag, tag_len);
}

bool edge_sip_peek_ack_tag(const char *data, size_t len, const char **tag, size_t *tag_len)
{
	const char *end, *line, *to = NULL, *to_end = NULL;

	if (!data || len < 4 || memcmp(data, "ACK ", 4))
		return false;
	end = data + len;
	/* Line by line up to the empty one that ends the header section. */
	for (line = data;;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line)), *q;
		size_t nl;

		/* CRLF only: sofia-sip also takes a bare LF or CR, where lines would be
		 * cut differently */
		if (!eol || eol == line || eol[-1] != '\r' ||
		    memchr(line, '\r', (size_t)(eol - 1 - line)))
			return false;
		if (eol - 1 == line)
			break; /* the empty line */
		if (line != data) {
			if (*line == ' ' || *line == '\t')
				return false; /* folded (§7.3.1): parse it */
			for (q = line; q < eol - 1 && is_token((unsigned char)*q); q++)
				;
			nl = (size_t)(q - line);
			while (q < eol - 1 && (*q == ' ' || *q == '\t'))
				q++;
			if (!nl || q == eol - 1 || *q != ':')
				return false;
			if ((nl == 2 && !strncasecmp(line, "To", 2)) ||
			    (nl == 1 && (*line == 't' || *line == 'T'))) {
				if (to)
					return false; /* two To headers: parse it */
				to = q + 1;
				to_end = eol - 1;
			}
		}
		line = eol + 1;
	}
	if (!to)
		return false;
	while (to < to_end && (*to == ' ' || *to == '\t'))
		to++;
	return to_tag(to, to_end, tag, tag_len);
}
