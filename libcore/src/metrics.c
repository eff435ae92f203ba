/* Metrics registry: counters, gauges and histograms printed in the Prometheus text
 * exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include <stdbool.h>
#include "skein/sk_metrics.h"

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

static const char *const kind_name[] = {"counter", "gauge", "histogram"};

struct sk_counter {
	uint64_t v;
	sk_metrics_read_cb *cb; /* function counter when set */
	void *arg;
};

struct sk_gauge {
	double v;
	sk_metrics_read_cb *cb; /* function gauge when set */
	void *arg;
};

struct sk_histogram {
	size_t n;
	double *bounds;
	uint64_t *buckets; /* n + 1 counts, not cumulative: the printer sums them */
	double sum;
	uint64_t count;
};

/* One line (or, for a histogram, one group of lines) of a family. */
struct series {
	struct series *next;
	enum kind kind;
	char *value; /* label value, NULL when the family has no label */
	union {
		struct sk_counter c;
		struct sk_gauge g;
		struct sk_histogram h;
	} u;
};

/* Everything printed under one "# HELP" / "# TYPE" pair. */
struct family {
	struct family *next;
	enum kind kind;
	char *name;
	char *help;
	char *label;
	bool raw; /* info family: the series value holds pre-formatted labels */
	struct series *series, **stail;
};

struct sk_metrics {
	struct family *fams, **ftail;
};

static void series_destroy(void *data)
{
	struct series *s = data;

	sk_deref(s->value);
	if (s->kind == K_HISTOGRAM) {
		sk_deref(s->u.h.bounds);
		sk_deref(s->u.h.buckets);
	}
}

static void family_destroy(void *data)
{
	struct family *f = data;
	struct series *s, *next;

	for (s = f->series; s; s = next) {
		next = s->next;
		sk_deref(s);
	}
	sk_deref(f->name);
	sk_deref(f->help);
	sk_deref(f->label);
}

static void metrics_destroy(void *data)
{
	struct sk_metrics *m = data;
	struct family *f, *next;

	for (f = m->fams; f; f = next) {
		next = f->next;
		sk_deref(f);
	}
}

int sk_metrics_alloc(struct sk_metrics **mp)
{
	struct sk_metrics *m;

	if (!mp)
		return SK_EINVAL;
	m = sk_zalloc(sizeof(*m), metrics_destroy);
	if (!m)
		return SK_ENOMEM;
	m->ftail = &m->fams;
	*mp = m;
	return 0;
}

static int is_name_char(char c, int first, int colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return 1;
	if (colon && c == ':')
		return 1;
	return !first && c >= '0' && c <= '9';
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: the same without ':'. */
static int valid_name(const char *s, int colon)
{
	if (!s || !*s)
		return 0;
	for (const char *p = s; *p; p++)
		if (!is_name_char(*p, p == s, colon))
			return 0;
	return 1;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

static int str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static struct family *family_find(struct sk_metrics *m, const char *name)
{
	for (struct family *f = m->fams; f; f = f->next)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

/* True when "<base><suffix>" equals name for one of a histogram's extra series. */
static int is_hist_line(const char *base, const char *name)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	size_t n = strlen(base);

	if (strncmp(base, name, n))
		return 0;
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++)
		if (!strcmp(name + n, sfx[i]))
			return 1;
	return 0;
}

/* A new family must not print lines another family already prints: a histogram
 * "x" owns x_bucket, x_sum and x_count. */
static int name_taken(struct sk_metrics *m, const char *name, enum kind kind)
{
	for (struct family *f = m->fams; f; f = f->next) {
		if (f->kind == K_HISTOGRAM && is_hist_line(f->name, name))
			return 1;
		if (kind == K_HISTOGRAM && is_hist_line(name, f->name))
			return 1;
	}
	return 0;
}

/* Finds or creates the series (name, value) of a family of this kind. *created
 * tells the caller to initialise it. SK_EINVAL for a bad name or a clash. */
static int series_get(struct series **sp, int *created, struct sk_metrics *m,
		      enum kind kind, const char *name, const char *help,
		      const char *label, const char *value)
{
	struct family *f, *nf = NULL;
	struct series *s = NULL;
	int err = SK_EINVAL;

	*created = 0;
	if (!m || !valid_name(name, 1) || (!label) != (!value))
		return SK_EINVAL;
	if (label && (!valid_name(label, 0) || !strncmp(label, "__", 2)))
		return SK_EINVAL;
	if (kind == K_COUNTER && !ends_with(name, "_total"))
		return SK_EINVAL;

	f = family_find(m, name);
	if (f) {
		if (f->kind != kind || !str_eq(f->label, label))
			return SK_EINVAL;
		if (!f->help)
			f->help = sk_strdup(help); /* the first help given wins */
		for (s = f->series; s; s = s->next) {
			if (str_eq(s->value, value)) {
				*sp = s;
				return 0;
			}
		}
	} else {
		if (name_taken(m, name, kind))
			return SK_EINVAL;
		err = SK_ENOMEM;
		f = nf = sk_zalloc(sizeof(*f), family_destroy);
		if (!f)
			goto out;
		f->kind = kind;
		f->stail = &f->series;
		f->name = sk_strdup(name);
		f->help = sk_strdup(help);
		f->label = sk_strdup(label);
		if (!f->name || (help && !f->help) || (label && !f->label))
			goto out;
	}

	err = SK_ENOMEM;
	s = sk_zalloc(sizeof(*s), series_destroy);
	if (!s)
		goto out;
	s->kind = kind;
	s->value = sk_strdup(value);
	if (value && !s->value)
		goto out;

	/* Nothing can fail past this point: link the new objects. */
	*f->stail = s;
	f->stail = &s->next;
	if (nf) {
		*m->ftail = nf;
		m->ftail = &nf->next;
	}
	*sp = s;
	*created = 1;
	return 0;

out:
	sk_deref(s);
	sk_deref(nf);
	return err;
}

struct sk_counter *sk_metrics_counter(struct sk_metrics *m, const char *name,
				      const char *help, const char *label,
				      const char *value)
{
	struct series *s;
	int created;

	if (series_get(&s, &created, m, K_COUNTER, name, help, label, value))
		return NULL;
	return &s->u.c;
}

struct sk_gauge *sk_metrics_gauge(struct sk_metrics *m, const char *name, const char *help,
				  const char *label, const char *value)
{
	struct series *s;
	int created;

	if (series_get(&s, &created, m, K_GAUGE, name, help, label, value))
		return NULL;
	/* A function gauge cannot be set: handing out its handle would hide that. */
	return s->u.g.cb ? NULL : &s->u.g;
}

int sk_metrics_gauge_fn(struct sk_metrics *m, const char *name, const char *help,
			const char *label, const char *value, sk_metrics_read_cb *cb,
			void *arg)
{
	struct series *s;
	int created, err;

	if (!cb)
		return SK_EINVAL;
	err = series_get(&s, &created, m, K_GAUGE, name, help, label, value);
	if (err)
		return err;
	if (!created)
		return SK_EEXIST;
	s->u.g.cb = cb;
	s->u.g.arg = arg;
	return 0;
}

int sk_metrics_counter_fn(struct sk_metrics *m, const char *name, const char *help,
			  sk_metrics_read_cb *cb, void *arg)
{
	struct series *s;
	int created, err;

	if (!cb)
		return SK_EINVAL;
	err = series_get(&s, &created, m, K_COUNTER, name, help, NULL, NULL);
	if (err)
		return err;
	if (!created)
		return SK_EEXIST;
	s->u.c.cb = cb;
	s->u.c.arg = arg;
	return 0;
}

int sk_metrics_info(struct sk_metrics *m, const char *name, const char *help,
		    const char *labels)
{
	struct series *s;
	int created, err;

	if (!labels || strpbrk(labels, "\n{}"))
		return SK_EINVAL;
	/* Registered as a one-label family so that the name is reserved, then marked
	 * raw: the "value" is printed as the whole label set. */
	err = series_get(&s, &created, m, K_GAUGE, name, help, "info", labels);
	if (err)
		return err;
	if (!created)
		return SK_EEXIST;
	for (struct family *f = m->fams; f; f = f->next)
		if (!strcmp(f->name, name))
			f->raw = true;
	s->u.g.v = 1;
	return 0;
}

struct sk_histogram *sk_metrics_histogram(struct sk_metrics *m, const char *name,
					  const char *help, const double *bounds,
					  size_t nbounds)
{
	struct sk_histogram *h = NULL;
	struct series *s;
	uint64_t *k;
	double *b;
	int created;

	if (nbounds && !bounds)
		return NULL;
	for (size_t i = 0; i < nbounds; i++)
		if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
			return NULL;

	/* Allocate first so that a failure leaves no half-made series behind. */
	b = sk_zalloc_array(nbounds ? nbounds : 1, sizeof(*b), NULL);
	k = sk_zalloc_array(nbounds + 1, sizeof(*k), NULL);
	if (!b || !k || series_get(&s, &created, m, K_HISTOGRAM, name, help, NULL, NULL))
		goto out;
	if (!created) {
		/* The same histogram again only if the buckets are the same. */
		if (s->u.h.n == nbounds &&
		    (!nbounds || !memcmp(s->u.h.bounds, bounds, nbounds * sizeof(*bounds))))
			h = &s->u.h;
		goto out;
	}
	h = &s->u.h;
	if (nbounds)
		memcpy(b, bounds, nbounds * sizeof(*b));
	h->n = nbounds;
	h->bounds = b;
	h->buckets = k;
	return h;

out:
	sk_deref(b);
	sk_deref(k);
	return h;
}

/* The hot-path calls accept NULL so that a daemon whose registration failed for
 * lack of memory keeps running without that metric. */
void sk_counter_inc(struct sk_counter *c)
{
	if (c)
		c->v++;
}

void sk_counter_add(struct sk_counter *c, uint64_t n)
{
	if (c)
		c->v += n;
}

uint64_t sk_counter_get(const struct sk_counter *c)
{
	return c ? c->v : 0;
}

void sk_gauge_set(struct sk_gauge *g, double v)
{
	if (g)
		g->v = v;
}

void sk_gauge_add(struct sk_gauge *g, double d)
{
	if (g)
		g->v += d;
}

double sk_gauge_get(const struct sk_gauge *g)
{
	if (!g)
		return 0;
	return g->cb ? g->cb(g->arg) : g->v;
}

void sk_histogram_observe(struct sk_histogram *h, double v)
{
	size_t i;

	if (!h)
		return;
	/* NaN matches no bound and lands in +Inf only, as in client_golang. */
	for (i = 0; i < h->n && !(v <= h->bounds[i]); i++)
		;
	h->buckets[i]++;
	h->sum += v;
	h->count++;
}

/* Integers without exponent while exact (|v| <= 2^53), otherwise the shortest %g
 * that reads back to the same double: 0.005, 2.5, 1e-07, 0.1 (never
 * 0.10000000000000001). */
static void fmt_double(char *out, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(out, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == trunc(v) && fabs(v) <= 9007199254740992.0) {
		snprintf(out, size, "%.0f", v + 0.0); /* + 0.0 turns -0 into 0 */
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* HELP text escapes \ and newline; label values also escape the double quote. */
static void put_escaped(struct sk_buf *b, const char *s, int quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && quote)
			esc = "\\\"";
		if (!esc)
			continue;
		sk_buf_append(b, run, (size_t)(s - run));
		sk_buf_puts(b, esc);
		run = s + 1;
	}
	sk_buf_append(b, run, (size_t)(s - run));
}

static void put_labels(struct sk_buf *b, const struct family *f, const struct series *s)
{
	if (f->raw) {
		sk_buf_printf(b, "{%s}", s->value);
		return;
	}
	if (!f->label)
		return;
	sk_buf_printf(b, "{%s=\"", f->label);
	put_escaped(b, s->value, 1);
	sk_buf_puts(b, "\"}");
}

static void print_histogram(struct sk_buf *b, const struct family *f,
			    const struct sk_histogram *h)
{
	uint64_t cum = 0;
	char num[40];

	for (size_t i = 0; i < h->n; i++) {
		cum += h->buckets[i];
		fmt_double(num, sizeof(num), h->bounds[i]);
		sk_buf_printf(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", f->name, num, cum);
	}
	sk_buf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", f->name, h->count);
	fmt_double(num, sizeof(num), h->sum);
	sk_buf_printf(b, "%s_sum %s\n", f->name, num);
	sk_buf_printf(b, "%s_count %" PRIu64 "\n", f->name, h->count);
}

static void print_family(struct sk_buf *b, const struct family *f)
{
	char num[40];

	if (f->help && *f->help) {
		sk_buf_printf(b, "# HELP %s ", f->name);
		put_escaped(b, f->help, 0);
		sk_buf_puts(b, "\n");
	}
	sk_buf_printf(b, "# TYPE %s %s\n", f->name, kind_name[f->kind]);
	for (const struct series *s = f->series; s; s = s->next) {
		switch (f->kind) {
		case K_COUNTER:
			sk_buf_puts(b, f->name);
			put_labels(b, f, s);
			if (s->u.c.cb) {
				fmt_double(num, sizeof(num), s->u.c.cb(s->u.c.arg));
				sk_buf_printf(b, " %s\n", num);
			} else {
				sk_buf_printf(b, " %" PRIu64 "\n", s->u.c.v);
			}
			break;
		case K_GAUGE:
			fmt_double(num, sizeof(num), sk_gauge_get(&s->u.g));
			sk_buf_puts(b, f->name);
			put_labels(b, f, s);
			sk_buf_printf(b, " %s\n", num);
			break;
		case K_HISTOGRAM:
			print_histogram(b, f, &s->u.h);
			break;
		}
	}
}

int sk_metrics_print(struct sk_metrics *m, struct sk_buf *b)
{
	if (!m || !b)
		return SK_EINVAL;
	for (const struct family *f = m->fams; f; f = f->next)
		print_family(b, f);
	return b->err;
}
