/* libFuzzer target for sk_conf: the input is loaded as an INI file, and each of its
 * lines is also tried as a --flag and as a SKEIN_ variable. A file that loads must
 * print back to a file that loads to the same values (sk_conf_value_print is the
 * inverse of the parser). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "skein/sk_buf.h"
#include "skein/sk_conf.h"
#include "skein/sk_mem.h"

struct cfg {
	char *s, *c, *e, *a;
	int64_t i, j;
	bool b;
	uint64_t d, t;
};

static int no_evil(const char *value, const char **why)
{
	if (strstr(value, "evil")) {
		*why = "no evil";
		return -1;
	}
	return 0;
}

static const char *const modes[] = {"fast", "safe", "off", NULL};

#define KEY(n, t, ...) \
	{.name = #n, .type = SK_CONF_##t, .offset = offsetof(struct cfg, n), __VA_ARGS__}

static const struct sk_conf_key keys_a[] = {
	KEY(s, STR, .flags = SK_CONF_REQUIRED),
	KEY(c, STR, .def = "ok", .check = no_evil, .flags = SK_CONF_RELOAD),
	KEY(e, ENUM, .def = "safe", .choices = modes, .flags = SK_CONF_RELOAD),
	KEY(a, ADDR, .def = "[::1]:5060"),
	KEY(i, INT, .def = "5", .min = -10, .max = 65535),
	KEY(j, INT, .def = "0", .flags = SK_CONF_RELOAD),
	KEY(b, BOOL, .def = "yes"),
	KEY(d, DURATION, .def = "3s", .min = 100, .max = 3600000, .flags = SK_CONF_RELOAD),
	KEY(t, DURATION, .def = "0"),
	SK_CONF_END,
};

static const struct sk_conf_key keys_b[] = {
	KEY(s, STR, .def = "", .flags = SK_CONF_RELOAD),
	KEY(a, ADDR, .def = "unix:/run/x.sock"),
	KEY(i, INT, .def = "1"),
	SK_CONF_END,
};

static const char *const skip[] = {"media", NULL};

static int memfd_path(const void *data, size_t size, char *path, size_t psize)
{
	int fd = memfd_create("fuzz_conf", 0);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, psize, "/proc/self/fd/%d", fd);
	return fd;
}

static void secs_init(struct sk_conf_section *secs, struct cfg *a, struct cfg *b)
{
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	secs[0] = (struct sk_conf_section){"cluster", keys_a, a};
	secs[1] = (struct sk_conf_section){"edge", keys_b, b};
}

/* Print every key to a file, load it into fresh targets, and compare. */
static void round_trip(const struct sk_conf_section *secs, size_t maxval)
{
	struct sk_conf_section again[2];
	struct cfg a2, b2;
	const struct sk_conf_key *k;
	struct sk_conf_err e;
	char path[64], *v1 = malloc(maxval), *v2 = malloc(maxval);
	struct sk_buf buf;
	size_t i;
	int fd;

	if (!v1 || !v2)
		abort();
	sk_buf_init(&buf);
	for (i = 0; i < 2; i++) {
		sk_buf_printf(&buf, "[%s]\n", secs[i].name);
		for (k = secs[i].keys; k->name; k++) {
			if (sk_conf_value_print(&secs[i], k, v1, maxval))
				abort();
			sk_buf_printf(&buf, "%s = %s\n", k->name, v1);
		}
	}
	if (buf.err)
		abort();
	secs_init(again, &a2, &b2);
	fd = memfd_path(buf.data, buf.len, path, sizeof(path));
	if (sk_conf_defaults(again, 2, &e) || sk_conf_file(again, 2, path, NULL, &e)) {
		fprintf(stderr, "round trip: %s: %s\n%s", e.where, e.why, buf.data);
		abort();
	}
	for (i = 0; i < 2; i++) {
		for (k = secs[i].keys; k->name; k++) {
			sk_conf_value_print(&secs[i], k, v1, maxval);
			sk_conf_value_print(&again[i], k, v2, maxval);
			if (strcmp(v1, v2)) {
				fprintf(stderr, "round trip of %s: %s != %s\n", k->name, v1, v2);
				abort();
			}
		}
	}
	/* same values: a reload has nothing to do */
	if (sk_conf_reload(secs, again, 2, NULL, NULL))
		abort();
	sk_conf_release(again, 2);
	close(fd);
	sk_buf_release(&buf);
	free(v1);
	free(v2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sk_conf_section secs[2];
	struct cfg a, b;
	struct sk_conf_err e;
	size_t live = sk_mem_live(), i, n, len;
	char path[64], *text, *line, *env[2];
	char *lines[16];
	uint64_t ms;
	int fd, err;

	secs_init(secs, &a, &b);
	if (sk_conf_defaults(secs, 2, &e))
		abort();
	fd = memfd_path(data, size, path, sizeof(path));
	err = sk_conf_file(secs, 2, path, skip, &e);
	close(fd);
	if (!err)
		round_trip(secs, 2 * size + 64);

	/* the same bytes as flags and variables, a line each */
	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	for (n = 0, line = text; n < 16 && line < text + size; line += len + 1) {
		len = strcspn(line, "\n");
		line[len] = '\0';
		lines[n++] = line;
	}
	for (i = 0; i < n; i++) {
		sk_conf_parse_duration(lines[i], &ms);
		sk_conf_flag(secs, 2, lines[i], &e);
		env[0] = malloc(strlen(lines[i]) + 7);
		if (!env[0])
			abort();
		sprintf(env[0], "SKEIN_%s", lines[i]);
		env[1] = NULL;
		sk_conf_env(secs, 2, env, &e);
		free(env[0]);
	}
	sk_conf_check_required(secs, 2, &e);
	if (!sk_conf_check_required(secs, 2, &e))
		round_trip(secs, 2 * size + 64);
	free(text);
	sk_conf_release(secs, 2);
	if (sk_mem_live() != live)
		abort();
	return 0;
}
