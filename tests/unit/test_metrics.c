/* sk_metrics: exposition text byte for byte, validation, escaping, allocation faults. */
#include <math.h>
#include <string.h>
#include "sk_test.h"
#include "skein/sk_err.h"
#include "skein/sk_metrics.h"

/* Prints m and compares with want; the buffer is released either way. */
static void assert_text(struct sk_metrics *m, const char *want)
{
	struct sk_buf b;

	sk_buf_init(&b);
	assert_int_equal(sk_metrics_print(m, &b), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, want);
	sk_buf_release(&b);
}

static void test_counter(void **state)
{
	struct sk_metrics *m;
	struct sk_counter *c;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	c = sk_metrics_counter(m, "skein_test_requests_total", "Requests served.", NULL,
			       NULL);
	assert_non_null(c);
	sk_counter_inc(c);
	sk_counter_add(c, 41);
	assert_int_equal(sk_counter_get(c), 42);
	assert_ptr_equal(sk_metrics_counter(m, "skein_test_requests_total", "x", NULL, NULL),
			 c);
	assert_text(m, "# HELP skein_test_requests_total Requests served.\n"
		       "# TYPE skein_test_requests_total counter\n"
		       "skein_test_requests_total 42\n");
	sk_deref(m);
}

static void test_labeled_family(void **state)
{
	struct sk_metrics *m;
	struct sk_counter *a, *b, *c;
	struct sk_gauge *g;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	a = sk_metrics_counter(m, "skein_bus_dropped_total", "Dropped messages.", "reason",
			       "malformed");
	g = sk_metrics_gauge(m, "skein_bus_peers", "Peers.", NULL, NULL);
	/* A later series of the first family still prints with it. */
	b = sk_metrics_counter(m, "skein_bus_dropped_total", NULL, "reason", "overflow");
	c = sk_metrics_counter(m, "skein_bus_dropped_total", NULL, "reason", "malformed");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(g);
	assert_ptr_equal(a, c);
	assert_ptr_not_equal(a, b);
	sk_counter_add(a, 3);
	sk_counter_inc(b);
	sk_gauge_set(g, 7);
	assert_text(m, "# HELP skein_bus_dropped_total Dropped messages.\n"
		       "# TYPE skein_bus_dropped_total counter\n"
		       "skein_bus_dropped_total{reason=\"malformed\"} 3\n"
		       "skein_bus_dropped_total{reason=\"overflow\"} 1\n"
		       "# HELP skein_bus_peers Peers.\n"
		       "# TYPE skein_bus_peers gauge\n"
		       "skein_bus_peers 7\n");
	sk_deref(m);
}

static void test_gauge(void **state)
{
	struct sk_metrics *m;
	struct sk_gauge *g, *h, *i;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	g = sk_metrics_gauge(m, "skein_test_temp_celsius", "Temperature.", "room", "a");
	h = sk_metrics_gauge(m, "skein_test_temp_celsius", NULL, "room", "b");
	i = sk_metrics_gauge(m, "skein_test_temp_celsius", NULL, "room", "c");
	assert_non_null(g);
	assert_non_null(h);
	assert_non_null(i);
	sk_gauge_set(g, 1.5);
	sk_gauge_add(g, 1.0);
	assert_true(sk_gauge_get(g) == 2.5);
	sk_gauge_set(h, -1e20);
	sk_gauge_set(i, 0.1);
	assert_text(m, "# HELP skein_test_temp_celsius Temperature.\n"
		       "# TYPE skein_test_temp_celsius gauge\n"
		       "skein_test_temp_celsius{room=\"a\"} 2.5\n"
		       "skein_test_temp_celsius{room=\"b\"} -1e+20\n"
		       "skein_test_temp_celsius{room=\"c\"} 0.1\n");
	sk_gauge_set(g, 9007199254740992.0);
	sk_gauge_set(h, NAN);
	sk_gauge_set(i, -INFINITY);
	assert_text(m, "# HELP skein_test_temp_celsius Temperature.\n"
		       "# TYPE skein_test_temp_celsius gauge\n"
		       "skein_test_temp_celsius{room=\"a\"} 9007199254740992\n"
		       "skein_test_temp_celsius{room=\"b\"} NaN\n"
		       "skein_test_temp_celsius{room=\"c\"} -Inf\n");
	sk_deref(m);
}

static int nread;

static double read_conns(void *arg)
{
	nread++;
	return *(double *)arg;
}

static void test_gauge_fn(void **state)
{
	struct sk_metrics *m;
	double v = 3;

	(void)state;
	nread = 0;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	assert_int_equal(sk_metrics_gauge_fn(m, "skein_http_connections", "Open connections.",
					     NULL, NULL, read_conns, &v),
			 0);
	assert_int_equal(sk_metrics_gauge_fn(m, "skein_http_connections", NULL, NULL, NULL,
					     read_conns, &v),
			 SK_EEXIST);
	assert_int_equal(sk_metrics_gauge_fn(m, "skein_http_x", NULL, NULL, NULL, NULL, NULL),
			 SK_EINVAL);
	assert_int_equal(sk_metrics_gauge_fn(m, "bad name", NULL, NULL, NULL, read_conns, &v),
			 SK_EINVAL);
	/* A function gauge has no settable handle. */
	assert_null(sk_metrics_gauge(m, "skein_http_connections", NULL, NULL, NULL));
	assert_int_equal(nread, 0); /* read at print time only */
	v = 12;
	assert_text(m, "# HELP skein_http_connections Open connections.\n"
		       "# TYPE skein_http_connections gauge\n"
		       "skein_http_connections 12\n");
	assert_int_equal(nread, 1);
	sk_deref(m);
}

static void test_histogram(void **state)
{
	static const double bounds[] = {0.005, 0.01, 0.1, 1, 2.5};
	struct sk_metrics *m;
	struct sk_histogram *h;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	h = sk_metrics_histogram(m, "skein_test_latency_seconds", "Latency.", bounds, 5);
	assert_non_null(h);
	assert_ptr_equal(sk_metrics_histogram(m, "skein_test_latency_seconds", NULL, bounds, 5),
			 h);
	assert_null(sk_metrics_histogram(m, "skein_test_latency_seconds", NULL, bounds, 4));
	sk_histogram_observe(h, 0.005); /* le is inclusive */
	sk_histogram_observe(h, 0.05);
	sk_histogram_observe(h, 0.5);
	sk_histogram_observe(h, 2);
	sk_histogram_observe(h, 10);
	assert_text(m, "# HELP skein_test_latency_seconds Latency.\n"
		       "# TYPE skein_test_latency_seconds histogram\n"
		       "skein_test_latency_seconds_bucket{le=\"0.005\"} 1\n"
		       "skein_test_latency_seconds_bucket{le=\"0.01\"} 1\n"
		       "skein_test_latency_seconds_bucket{le=\"0.1\"} 2\n"
		       "skein_test_latency_seconds_bucket{le=\"1\"} 3\n"
		       "skein_test_latency_seconds_bucket{le=\"2.5\"} 4\n"
		       "skein_test_latency_seconds_bucket{le=\"+Inf\"} 5\n"
		       "skein_test_latency_seconds_sum 12.555\n"
		       "skein_test_latency_seconds_count 5\n");
	/* Only +Inf: a plain count and sum. */
	h = sk_metrics_histogram(m, "skein_test_size_bytes", NULL, NULL, 0);
	assert_non_null(h);
	sk_histogram_observe(h, 100);
	assert_text(m, "# HELP skein_test_latency_seconds Latency.\n"
		       "# TYPE skein_test_latency_seconds histogram\n"
		       "skein_test_latency_seconds_bucket{le=\"0.005\"} 1\n"
		       "skein_test_latency_seconds_bucket{le=\"0.01\"} 1\n"
		       "skein_test_latency_seconds_bucket{le=\"0.1\"} 2\n"
		       "skein_test_latency_seconds_bucket{le=\"1\"} 3\n"
		       "skein_test_latency_seconds_bucket{le=\"2.5\"} 4\n"
		       "skein_test_latency_seconds_bucket{le=\"+Inf\"} 5\n"
		       "skein_test_latency_seconds_sum 12.555\n"
		       "skein_test_latency_seconds_count 5\n"
		       "# TYPE skein_test_size_bytes histogram\n"
		       "skein_test_size_bytes_bucket{le=\"+Inf\"} 1\n"
		       "skein_test_size_bytes_sum 100\n"
		       "skein_test_size_bytes_count 1\n");
	sk_deref(m);
}

static void test_invalid(void **state)
{
	static const double bad_order[] = {1, 1}, bad_inf[] = {1, INFINITY}, ok[] = {1};
	struct sk_metrics *m;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	assert_null(sk_metrics_counter(m, "", NULL, NULL, NULL));
	assert_null(sk_metrics_counter(m, NULL, NULL, NULL, NULL));
	assert_null(sk_metrics_counter(m, "0abc_total", NULL, NULL, NULL));
	assert_null(sk_metrics_counter(m, "a-b_total", NULL, NULL, NULL));
	assert_null(sk_metrics_counter(m, "skein_requests", NULL, NULL, NULL));
	assert_null(sk_metrics_gauge(m, "skein requests", NULL, NULL, NULL));
	assert_non_null(sk_metrics_gauge(m, "skein:ns_requests", NULL, NULL, NULL));
	/* Labels: name and value together, a valid name without ':' or "__". */
	assert_null(sk_metrics_counter(m, "a_total", NULL, "reason", NULL));
	assert_null(sk_metrics_counter(m, "a_total", NULL, NULL, "x"));
	assert_null(sk_metrics_counter(m, "a_total", NULL, "re:ason", "x"));
	assert_null(sk_metrics_counter(m, "a_total", NULL, "__reason", "x"));
	assert_null(sk_metrics_counter(m, "a_total", NULL, "1reason", "x"));

	/* Type and label clashes. */
	assert_non_null(sk_metrics_counter(m, "x_total", NULL, "reason", "a"));
	assert_null(sk_metrics_gauge(m, "x_total", NULL, "reason", "a"));
	assert_null(sk_metrics_histogram(m, "x_total", NULL, ok, 1));
	assert_null(sk_metrics_counter(m, "x_total", NULL, "kind", "a"));
	assert_null(sk_metrics_counter(m, "x_total", NULL, NULL, NULL));
	assert_int_equal(sk_metrics_gauge_fn(m, "x_total", NULL, NULL, NULL, read_conns, NULL),
			 SK_EINVAL);
	assert_non_null(sk_metrics_gauge(m, "y", NULL, NULL, NULL));
	assert_null(sk_metrics_gauge(m, "y", NULL, "l", "v"));

	/* Histogram bounds, and the lines a histogram owns. */
	assert_null(sk_metrics_histogram(m, "h", NULL, bad_order, 2));
	assert_null(sk_metrics_histogram(m, "h", NULL, bad_inf, 2));
	assert_null(sk_metrics_histogram(m, "h", NULL, NULL, 1));
	assert_non_null(sk_metrics_histogram(m, "h", NULL, ok, 1));
	assert_null(sk_metrics_gauge(m, "h_sum", NULL, NULL, NULL));
	assert_null(sk_metrics_gauge(m, "h_bucket", NULL, NULL, NULL));
	assert_non_null(sk_metrics_gauge(m, "g_count", NULL, NULL, NULL));
	assert_null(sk_metrics_histogram(m, "g", NULL, ok, 1));

	/* Nothing of the failures shows up. */
	assert_text(m, "# TYPE skein:ns_requests gauge\n"
		       "skein:ns_requests 0\n"
		       "# TYPE x_total counter\n"
		       "x_total{reason=\"a\"} 0\n"
		       "# TYPE y gauge\n"
		       "y 0\n"
		       "# TYPE h histogram\n"
		       "h_bucket{le=\"1\"} 0\n"
		       "h_bucket{le=\"+Inf\"} 0\n"
		       "h_sum 0\n"
		       "h_count 0\n"
		       "# TYPE g_count gauge\n"
		       "g_count 0\n");

	/* The hot path tolerates the NULL a failed registration returned. */
	sk_counter_inc(NULL);
	sk_gauge_set(NULL, 1);
	sk_histogram_observe(NULL, 1);
	assert_int_equal(sk_counter_get(NULL), 0);
	assert_int_equal(sk_metrics_alloc(NULL), SK_EINVAL);
	sk_deref(m);
}

static void test_escaping(void **state)
{
	struct sk_metrics *m;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	assert_non_null(sk_metrics_counter(m, "e_total", "a \\ b\nc \"q\"", "path",
					   "C:\\x\n\"y\""));
	assert_text(m, "# HELP e_total a \\\\ b\\nc \"q\"\n"
		       "# TYPE e_total counter\n"
		       "e_total{path=\"C:\\\\x\\n\\\"y\\\"\"} 0\n");
	sk_deref(m);
}

static void test_help_later(void **state)
{
	struct sk_metrics *m;

	(void)state;
	assert_int_equal(sk_metrics_alloc(&m), 0);
	assert_non_null(sk_metrics_gauge(m, "g", NULL, "k", "a"));
	assert_non_null(sk_metrics_gauge(m, "g", "Given later.", "k", "b"));
	assert_non_null(sk_metrics_gauge(m, "g", "Ignored.", "k", "c"));
	assert_text(m, "# HELP g Given later.\n"
		       "# TYPE g gauge\n"
		       "g{k=\"a\"} 0\n"
		       "g{k=\"b\"} 0\n"
		       "g{k=\"c\"} 0\n");
	sk_deref(m);
}

static double read_one(void *arg)
{
	(void)arg;
	return 1;
}

/* Registers a fixed set; returns how many registrations succeeded. */
static int register_all(struct sk_metrics *m)
{
	static const double bounds[] = {0.1, 1};
	int n = 0;

	n += !!sk_metrics_counter(m, "f_total", "F.", "reason", "a");
	n += !!sk_metrics_counter(m, "f_total", NULL, "reason", "b");
	n += !!sk_metrics_gauge(m, "f_gauge", "G.", NULL, NULL);
	n += !sk_metrics_gauge_fn(m, "f_fn", "Fn.", "k", "v", read_one, NULL);
	n += !!sk_metrics_histogram(m, "f_hist", "H.", bounds, 2);
	return n;
}

static void test_alloc_faults(void **state)
{
	unsigned long n;
	int ok = 0;

	(void)state;
	for (n = 1; !ok; n++) {
		size_t before = sk_mem_live();
		struct sk_metrics *m = NULL;
		struct sk_buf b;
		int err, got;

		sk_mem_fail_after(n);
		err = sk_metrics_alloc(&m);
		if (err) {
			sk_mem_fail_after(0);
			assert_int_equal(err, SK_ENOMEM);
			assert_int_equal(sk_mem_live(), before);
			continue;
		}
		got = register_all(m);
		sk_mem_fail_after(0);
		ok = got == 5;
		/* Whatever was registered still prints cleanly. */
		sk_buf_init(&b);
		assert_int_equal(sk_metrics_print(m, &b), 0);
		if (ok)
			assert_non_null(strstr(b.data, "f_hist_count 0\n"));
		sk_buf_release(&b);
		sk_deref(m);
		assert_int_equal(sk_mem_live(), before);
		assert_true(n < 100);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		SK_TEST(test_counter),   SK_TEST(test_labeled_family), SK_TEST(test_gauge),
		SK_TEST(test_gauge_fn),  SK_TEST(test_histogram),      SK_TEST(test_invalid),
		SK_TEST(test_escaping),  SK_TEST(test_help_later),     SK_TEST(test_alloc_faults),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
