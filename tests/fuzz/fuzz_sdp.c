/* libFuzzer target for SDP (RFC 4566/8866) as sofia-sip parses it (sofia-sip/sdp.h):
 * the input is one session description, the body of an offer or an answer. The edge
 * does not read SDP today; the media relay will, through this parser, so this target
 * fixes what it may rely on before it does. The input is parsed in the modes a relay
 * would use (strict; lenient with any network type and media without c=; the
 * default), and every parsed session is:
 * - checked with sdp_sanity_check() and walked the way a relay reads an offer (media,
 *   ports, connections, rtpmaps, the ICE/DTLS/BUNDLE attributes, direction). A session
 *   that fails the check is gone: sdp_session() must be asked again after it;
 * - duplicated (sdp_session_dup), which must compare equal (sdp_session_cmp);
 * - printed (sdp_print) and the printed text parsed again with the same flags: it must
 *   parse, compare equal to the session it was printed from, and print the same.
 * The parser gets a heap copy of exactly the input size, so an over-read is caught.
 * An input that fails the relay's guard (sdp_m_lines_ok, below) is not parsed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

/* Touches a string sofia-sip handed out, so a dangling or unterminated one is seen. */
static size_t touch(const char *s)
{
	return s ? strlen(s) : 0;
}

static size_t walk_conn(const sdp_connection_t *c)
{
	size_t n = 0;

	for (; c; c = c->c_next)
		n += touch(c->c_address) + c->c_ttl + c->c_groups;
	return n;
}

static size_t walk_attrs(const sdp_attribute_t *a)
{
	static const char *const names[] = {
	    "candidate", "fingerprint", "setup",     "rtcp-mux",	 "rtcp",   "ssrc",
	    "mid",	 "group",	"ice-ufrag", "ice-pwd",		 "crypto", "fmtp",
	    "rtcp-fb",	 "extmap",	"msid",	     "end-of-candidates"};
	size_t n = 0;

	for (const sdp_attribute_t *p = a; p; p = p->a_next)
		n += touch(p->a_name) + touch(p->a_value);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const sdp_attribute_t *f = sdp_attribute_find(a, names[i]);

		if (f && (!f->a_name || strcasecmp(f->a_name, names[i])))
			abort();
		n += f != NULL;
	}
	return n;
}

static size_t walk(const sdp_session_t *s)
{
	size_t n = touch(s->sdp_subject) + touch(s->sdp_information) + touch(s->sdp_uri) +
		   touch(s->sdp_charset);

	if (s->sdp_origin)
		n += touch(s->sdp_origin->o_username) + walk_conn(s->sdp_origin->o_address);
	for (const sdp_list_t *l = s->sdp_emails; l; l = l->l_next)
		n += touch(l->l_text);
	for (const sdp_list_t *l = s->sdp_phones; l; l = l->l_next)
		n += touch(l->l_text);
	n += walk_conn(s->sdp_connection);
	for (const sdp_bandwidth_t *b = s->sdp_bandwidths; b; b = b->b_next)
		n += touch(b->b_modifier_name) + b->b_value;
	for (const sdp_time_t *t = s->sdp_time; t; t = t->t_next) {
		if (t->t_repeat)
			for (int i = 0; i < t->t_repeat->r_number_of_offsets; i++)
				n += t->t_repeat->r_offsets[i];
		if (t->t_zone)
			for (int i = 0; i < t->t_zone->z_number_of_adjustments; i++)
				n += t->t_zone->z_adjustments[i].z_at;
	}
	if (s->sdp_key)
		n += touch(s->sdp_key->k_method_name) + touch(s->sdp_key->k_material);
	n += walk_attrs(s->sdp_attributes);
	for (const sdp_media_t *m = s->sdp_media; m; m = m->m_next) {
		if (m->m_session != s)
			abort();
		n += touch(m->m_type_name) + touch(m->m_proto_name) + touch(m->m_information);
		n += m->m_port + m->m_number_of_ports + m->m_rejected + m->m_mode;
		for (const sdp_list_t *l = m->m_format; l; l = l->l_next)
			n += touch(l->l_text);
		for (const sdp_rtpmap_t *r = m->m_rtpmaps; r; r = r->rm_next) {
			n += touch(r->rm_encoding) + touch(r->rm_params) + touch(r->rm_fmtp);
			if (sdp_rtpmap_find_matching(m->m_rtpmaps, r) == NULL)
				abort(); /* an entry matches itself */
		}
		n += walk_conn(m->m_connections) + walk_conn(sdp_media_connections(m));
		for (const sdp_bandwidth_t *b = m->m_bandwidths; b; b = b->b_next)
			n += touch(b->b_modifier_name);
		if (m->m_key)
			n += touch(m->m_key->k_method_name) + touch(m->m_key->k_material);
		n += walk_attrs(m->m_attributes);
		n += (size_t)sdp_attribute_mode(m->m_attributes, sdp_sendrecv);
		n += (size_t)sdp_media_has_rtp(m) + (size_t)sdp_media_uses_rtp(m);
		n += sdp_media_count_with(s, m);
	}
	n += sdp_media_count(s, sdp_media_audio, NULL, sdp_proto_rtp, NULL);
	n += sdp_media_count(s, sdp_media_any, NULL, sdp_proto_any, NULL);
	return n;
}

/* The guard the media relay must run before sdp_parse() (kept here until the relay
 * exists): sofia-sip 1.12 loops for ever, allocating, when an entry of an m= line's
 * format list starts with a character its token() does not take ("m=audio 4 X ,0",
 * "m=audio 4 RT,/AVP 0", "m=image 9 udptl ,t38"): parse_media() never advances, and
 * every turn allocates an sdp_list_t until memory runs out (found by this target).
 * RFC 4566 §5.14: m= is <media> SP <port>[/<n>] SP <proto> 1*(SP <fmt>), <proto> =
 * token *("/" token), <fmt> = token. So an SDP with an m= line whose fields are not
 * exactly that, one space apart, is refused ("m=audio 4x RTP/AVP 0": sofia-sip would
 * read port 4 and proto "x"; "m=video 9 RT\t": a tab after the proto loops too).
 * sofia-sip ends lines at CR or LF, skips leading spaces and tabs when not strict,
 * and stops at the first NUL. */
static bool is_token(const char *b, size_t n)
{
	static const char token[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789-.!%*_+`'~";

	for (size_t k = 0; k < n; k++)
		if (!memchr(token, b[k], sizeof(token) - 1))
			return false;
	return n > 0;
}

/* One field of an m= line: 0 <media> token, 1 <port>[/<n>] digits, 2 <proto>
 * token *("/" token), then <fmt> tokens. */
static bool m_field_ok(size_t field, const char *b, size_t n)
{
	const char *slash = memchr(b, '/', n);

	switch (field) {
	case 0:
		return is_token(b, n);
	case 1:
		for (size_t k = 0; k < n; k++)
			if ((b[k] < '0' || b[k] > '9') && (b[k] != '/' || k == 0 || k + 1 == n))
				return false;
		return n > 0 && (!slash || !memchr(slash + 1, '/', n - (size_t)(slash + 1 - b)));
	case 2:
		for (size_t k = 0, t = 0; k <= n; k++)
			if (k == n || b[k] == '/') {
				if (!is_token(b + t, k - t))
					return false;
				t = k + 1;
			}
		return true;
	default:
		return is_token(b, n);
	}
}

static bool sdp_m_lines_ok(const char *buf, size_t size)
{
	size_t i = 0;

	while (i < size) {
		size_t e = i;

		while (e < size && buf[e] != '\r' && buf[e] != '\n' && buf[e] != '\0')
			e++;
		while (i < e && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		if (e - i >= 2 && buf[i] == 'm' && buf[i + 1] == '=') {
			size_t k = i + 2, field = 0;

			while (k < e) {
				size_t f = k;

				while (f < e && buf[f] != ' ')
					f++;
				if (!m_field_ok(field++, buf + k, f - k))
					return false;
				if (f + 1 == e)
					return false; /* trailing space */
				k = f + 1;
			}
		}
		if (e < size && buf[e] == '\0')
			break;
		i = e + 1;
	}
	return true;
}

static void one(const char *buf, size_t size, int flags)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	sdp_parser_t *p = sdp_parse(home, buf, (issize_t)size, flags), *p2;
	sdp_printer_t *pr, *pr2;
	sdp_session_t *s, *d, *s2;
	const char *text;

	if (!p)
		abort(); /* out of memory only: errors are reported through the parser */
	s = sdp_session(p);
	if (!s) {
		if (!sdp_parsing_error(p))
			abort(); /* a failure says why */
		goto out;
	}
	/* A failed check drops the session and reuses its memory (sofia-sip 1.12: the
	 * pointer taken before then reads the error text): take it again after. */
	if (sdp_sanity_check(p) != 0) {
		if (sdp_session(p) || !sdp_parsing_error(p))
			abort();
		goto out;
	}
	if (sdp_session(p) != s)
		abort();
	(void)walk(s);

	d = sdp_session_dup(home, s);
	if (!d || sdp_session_cmp(s, d) != 0)
		abort();

	pr = sdp_print(home, s, NULL, 0, 0);
	if (!pr)
		abort();
	text = sdp_message(pr);
	if (!sdp_printing_error(pr) && text) {
		size_t tl = sdp_message_size(pr);

		if (tl != strlen(text))
			abort();
		/* What we print must parse again, with the same flags, and print the same.
		 * Except that sofia-sip 1.12 prints some zone adjustments in a form its own
		 * strict parser refuses (read "z=288284 -", printed "z=288284 0": "extra
		 * data after z"): then the lenient parser must take it. */
		p2 = sdp_parse(home, text, (issize_t)tl, flags);
		s2 = p2 ? sdp_session(p2) : NULL;
		if (!s2) {
			if (!(flags & sdp_f_strict) || !strstr(text, "\r\nz="))
				abort();
			sdp_parser_free(p2);
			p2 = sdp_parse(home, text, (issize_t)tl, flags & ~sdp_f_strict);
			if (!p2 || !sdp_session(p2))
				abort();
			sdp_parser_free(p2);
			sdp_printer_free(pr);
			goto out;
		}
		pr2 = sdp_print(home, s2, NULL, 0, 0);
		if (!pr2 || sdp_printing_error(pr2) || !sdp_message(pr2) ||
		    strcmp(sdp_message(pr2), text))
			abort(); /* and print the same */
		sdp_printer_free(pr2);
		sdp_parser_free(p2);
	}
	sdp_printer_free(pr);
out:
	sdp_parser_free(p);
	su_home_deinit(home);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int modes[] = {
	    sdp_f_strict,
	    sdp_f_anynet | sdp_f_c_missing,
	    0,
	    sdp_f_insane | sdp_f_mode_0000,
	};
	char *buf = malloc(size ? size : 1);

	if (!buf)
		abort();
	memcpy(buf, data, size);
	for (size_t k = 0; sdp_m_lines_ok(buf, size) && k < sizeof(modes) / sizeof(modes[0]); k++)
		one(buf, size, modes[k]);
	if (memcmp(buf, data, size))
		abort(); /* the input is only read */
	free(buf);
	return 0;
}
