/* xcap_error: <xcap-error> bodies (RFC 4825 §11.2 and its schema, §11.3). */
#include <stdio.h>
#include <string.h>
#include "skein/sk_buf.h"
#include "xcap_error.h"

static const char *const names[] = {
    [XCAP_ERR_NONE] = "extension",
    [XCAP_ERR_NOT_WELL_FORMED] = "not-well-formed",
    [XCAP_ERR_NOT_XML_FRAG] = "not-xml-frag",
    [XCAP_ERR_NO_PARENT] = "no-parent",
    [XCAP_ERR_SCHEMA] = "schema-validation-error",
    [XCAP_ERR_NOT_XML_ATT_VALUE] = "not-xml-att-value",
    [XCAP_ERR_CANNOT_INSERT] = "cannot-insert",
    [XCAP_ERR_CANNOT_DELETE] = "cannot-delete",
    [XCAP_ERR_UNIQUENESS] = "uniqueness-failure",
    [XCAP_ERR_CONSTRAINT] = "constraint-failure",
    [XCAP_ERR_NOT_UTF8] = "not-utf-8",
};

const char *xcap_error_name(enum xcap_error_kind kind)
{
	return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "extension";
}

void xcap_conflict_set(struct xcap_conflict *c, enum xcap_error_kind kind, const char *field,
		       const char *value, const char *phrase)
{
	c->kind = kind;
	snprintf(c->field, sizeof(c->field), "%s", field ? field : "");
	snprintf(c->value, sizeof(c->value), "%s", value ? value : "");
	snprintf(c->phrase, sizeof(c->phrase), "%s", phrase ? phrase : "");
	c->alt[0] = '\0';
}

int xcap_xml_escape(struct sk_buf *b, const char *s, size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		const char *e = s[i] == '&'    ? "&amp;"
				: s[i] == '<'  ? "&lt;"
				: s[i] == '>'  ? "&gt;"
				: s[i] == '"'  ? "&quot;"
				: s[i] == '\'' ? "&apos;"
					       : NULL;

		if (!e)
			continue;
		sk_buf_append(b, s + run, i - run);
		sk_buf_puts(b, e);
		run = i + 1;
	}
	sk_buf_append(b, s + run, n - run);
	return b->err;
}

int xcap_error_body(struct sk_buf *b, const struct xcap_conflict *c)
{
	const char *name = xcap_error_name(c->kind);

	sk_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<xcap-error xmlns=\"urn:ietf:params:xml:ns:xcap-error\">\n");
	if (c->kind == XCAP_ERR_UNIQUENESS) {
		/* §11.2: <exists field="selector"> with the values that would be unique as
		 * <alt-value>s (we offer at most one); the duplicate itself is named in the
		 * phrase. */
		sk_buf_puts(b, "  <uniqueness-failure");
		if (c->phrase[0]) {
			sk_buf_puts(b, " phrase=\"");
			xcap_xml_escape(b, c->phrase, strlen(c->phrase));
			sk_buf_puts(b, "\"");
		}
		sk_buf_puts(b, ">\n    <exists field=\"");
		xcap_xml_escape(b, c->field, strlen(c->field));
		if (c->alt[0]) {
			sk_buf_puts(b, "\">\n      <alt-value>");
			xcap_xml_escape(b, c->alt, strlen(c->alt));
			sk_buf_puts(b, "</alt-value>\n    </exists>\n  </uniqueness-failure>\n");
		} else {
			sk_buf_puts(b, "\"/>\n  </uniqueness-failure>\n");
		}
	} else {
		sk_buf_printf(b, "  <%s", name);
		if (c->phrase[0]) {
			sk_buf_puts(b, " phrase=\"");
			xcap_xml_escape(b, c->phrase, strlen(c->phrase));
			sk_buf_puts(b, "\"");
		}
		sk_buf_puts(b, "/>\n");
	}
	sk_buf_puts(b, "</xcap-error>\n");
	return b->err;
}
