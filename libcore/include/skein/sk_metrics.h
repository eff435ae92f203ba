/* sk_metrics: a small registry of counters, gauges and histograms printed in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Names are full metric names (skein_<daemon>_<what>_<unit>); counters must end in
 * "_total". A family may have several series that differ in one bounded label
 * (label name fixed per family, values known in advance), e.g.
 *   skein_registrar_bus_dropped_total{reason="malformed"}.
 * Series are created once at start-up and updated on the hot path without lookups:
 * the handles below stay valid until the registry is freed. Single-threaded. */
#ifndef SK_METRICS_H
#define SK_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "skein/sk_buf.h"

struct sk_metrics;
struct sk_counter;
struct sk_gauge;
struct sk_histogram;

/* Function gauges are read at scrape time (e.g. open connections, live nodes). */
typedef double(sk_metrics_read_cb)(void *arg);

int sk_metrics_alloc(struct sk_metrics **mp);

/* label/value may be NULL for an unlabelled series. Registering the same
 * (name, label value) twice returns the same series. A name registered with another
 * type, a counter not ending in _total, or an invalid name (not
 * [a-zA-Z_:][a-zA-Z0-9_:]*) returns NULL. */
struct sk_counter *sk_metrics_counter(struct sk_metrics *m, const char *name,
				      const char *help, const char *label,
				      const char *value);
struct sk_gauge *sk_metrics_gauge(struct sk_metrics *m, const char *name, const char *help,
				  const char *label, const char *value);
int sk_metrics_gauge_fn(struct sk_metrics *m, const char *name, const char *help,
			const char *label, const char *value, sk_metrics_read_cb *cb,
			void *arg);
/* A counter read at scrape time (e.g. process_cpu_seconds_total); name ends in _total. */
int sk_metrics_counter_fn(struct sk_metrics *m, const char *name, const char *help,
			  sk_metrics_read_cb *cb, void *arg);
/* A constant info gauge of value 1 with several labels, given pre-formatted as
 * `a="x",b="y"` (values already escaped), e.g. skein_build_info. */
int sk_metrics_info(struct sk_metrics *m, const char *name, const char *help,
		    const char *labels);
/* bounds: strictly increasing upper bounds in base units (seconds), +Inf implied. */
struct sk_histogram *sk_metrics_histogram(struct sk_metrics *m, const char *name,
					  const char *help, const double *bounds,
					  size_t nbounds);

void sk_counter_inc(struct sk_counter *c);
void sk_counter_add(struct sk_counter *c, uint64_t n);
uint64_t sk_counter_get(const struct sk_counter *c);
void sk_gauge_set(struct sk_gauge *g, double v);
void sk_gauge_add(struct sk_gauge *g, double d);
double sk_gauge_get(const struct sk_gauge *g);
void sk_histogram_observe(struct sk_histogram *h, double v);

/* Append the whole registry in exposition format: families in registration order,
 * "# HELP" and "# TYPE" once per family, label values escaped. */
int sk_metrics_print(struct sk_metrics *m, struct sk_buf *b);

#endif
