/* guard: the loop-free parts of the edge's protection against floods, scanners and
 * password guessing (issue 5; the policy that uses them is core_guard.c):
 *
 * - guard_ip: an IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d), the key
 *   of every per-source table;
 * - guard_nets: a CIDR list (trusted_networks), matched in O(entries);
 * - guard_words: case-insensitive substrings (scanner_user_agents);
 * - guard_buckets: one token bucket per source in an open-addressed table of fixed
 *   size. When it fills up, sources whose bucket is full again (idle) are forgotten;
 *   if that frees nothing (a flood from very many addresses, spoofed UDP) a new
 *   source is not tracked and is let through — the per-source limit cannot hold
 *   then anyway, and the total load limits (max_transactions) still apply;
 * - guard_bans: a sorted array of banned addresses with their end, rebuilt whenever
 *   the cluster's ban set changes, looked up by binary search. */
#ifndef SKEIN_EDGE_GUARD_H
#define SKEIN_EDGE_GUARD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct guard_ip {
	uint8_t b[16];
};
/* From a sockaddr (AF_INET or AF_INET6); false for another family. */
bool guard_ip_from_sa(struct guard_ip *ip, const struct sockaddr *sa);
/* From text ("192.0.2.1", "2001:db8::1"); false when it is not an address. */
bool guard_ip_parse(struct guard_ip *ip, const char *s);
/* Canonical text (IPv4 dotted for mapped addresses); buf of 46 bytes at least. */
const char *guard_ip_str(const struct guard_ip *ip, char *buf, size_t size);

struct guard_nets;
/* "192.0.2.0/24, 2001:db8::/32, 198.51.100.7" (a bare address is /32 or /128).
 * *out is NULL for an empty list. 0, SK_EINVAL (*why names the bad entry, valid until
 * the next call) or SK_ENOMEM. Free with sk_deref. */
int guard_nets_parse(struct guard_nets **out, const char *list, const char **why);
bool guard_nets_match(const struct guard_nets *n, const struct guard_ip *ip);

struct guard_words;
/* Comma-separated, blanks around each word trimmed; *out NULL for an empty list. */
int guard_words_parse(struct guard_words **out, const char *list);
/* The first word found in s (any case), or NULL. */
const char *guard_words_match(const struct guard_words *w, const char *s);

/* Per-source token buckets: rate tokens per second, at most burst. */
struct guard_buckets;
int guard_buckets_alloc(struct guard_buckets **out, size_t capacity);
enum guard_take {
	GUARD_TAKEN,	/* under the limit */
	GUARD_EMPTY,	/* over it: shed this request */
	GUARD_UNTRACKED /* table full of active sources: let through, counted */
};
/* One request from ip at now_ns. *over is how many requests this source had
 * refused in a row (refusals more than 10 s apart start the count again). */
enum guard_take guard_buckets_take(struct guard_buckets *t, const struct guard_ip *ip,
				   uint64_t now_ns, double rate, double burst, uint64_t *over);
size_t guard_buckets_count(const struct guard_buckets *t);

/* Banned addresses and when each ban ends (ms on the caller's clock). */
struct guard_bans;
int guard_bans_alloc(struct guard_bans **out);
/* Replaces the whole set (the entries are copied and sorted). */
struct guard_ban {
	struct guard_ip ip;
	uint64_t until_ms;
};
int guard_bans_set(struct guard_bans *b, const struct guard_ban *v, size_t n);
/* Adds or extends one (a ban this edge just placed, before the next sync). */
int guard_bans_add(struct guard_bans *b, const struct guard_ip *ip, uint64_t until_ms);
bool guard_bans_hit(const struct guard_bans *b, const struct guard_ip *ip, uint64_t now_ms);
size_t guard_bans_count(const struct guard_bans *b, uint64_t now_ms);

#endif
