// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fuzz_routes: route templating (user/routes.c), which turns every captured
 * request path into an http_route label, and the hash -> id memory beside it.
 *
 * Input: one byte, max_routes (low 6 bits); then lines ('\n'):
 *   "@PATTERN"  routes_add_pattern (an operator's --route)
 *   "!PATH"     a path whose capture was truncated (BS_PATH_MAX reached)
 *   "-PATH"     the hash of PATH forgotten (routes_remember of
 *               BS_ROUTE_UNRESOLVED: the kernel's entry was dropped)
 *   "PATH"      a path as captured
 * each path resolved, its label taken, and its hash remembered.
 *
 * Invariants: a label is at most ROUTES_LABEL_MAX bytes of printable ASCII,
 * without '"' or '\\', and every '%' in it starts a %XX escape (rules 7 and
 * 8: nothing a client sends breaks the exposition format); the label of the
 * id a path resolves to is the label routes_label_for() gives (or _other,
 * counted, once the table is full); never more than max_routes routes;
 * remembered hashes answer with their latest id or not at all.
 */
#include <errno.h>

#include "fuzz.h"
#include "routes.h"

#define NHASH 64 /* weak_hash() values */

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void check_label(const char *l, size_t len)
{
	FZ_CHECK(len == strlen(l));
	FZ_CHECK(len >= 1 && len <= ROUTES_LABEL_MAX);
	for (size_t i = 0; i < len; i++) {
		FZ_CHECK(l[i] > 0x20 && l[i] < 0x7f);
		FZ_CHECK(l[i] != '"' && l[i] != '\\');
		if (l[i] == '%')
			FZ_CHECK(i + 2 < len && is_hex(l[i + 1]) && is_hex(l[i + 2]));
	}
}

/* a weak hash on purpose: few values, so that remembered ones repeat */
static __u64 weak_hash(const char *s, size_t n)
{
	__u64 h = n;

	for (size_t i = 0; i < n; i++)
		h = h * 31 + (unsigned char)s[i];
	return h & (NHASH - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	__u32 last[NHASH]; /* the latest id remembered for each hash */
	unsigned int max_routes;
	char label[ROUTES_LABEL_MAX + 1], again[ROUTES_LABEL_MAX + 1], err[128];
	struct route_table *rt;
	uint8_t b;
	char *line;

	if (fz_u8(&f, &b))
		return 0;
	max_routes = b & 0x3f;
	memset(last, 0xff, sizeof(last));
	rt = routes_new(max_routes);
	FZ_CHECK(rt != NULL);
	while ((line = fz_field(&f, '\n'))) {
		if (line[0] == '@') {
			unsigned int before = routes_count(rt);

			err[0] = 0;
			if (routes_add_pattern(rt, line + 1, err, sizeof(err)) == 0) {
				/* a label already known (the same pattern again) keeps its id */
				FZ_CHECK(routes_count(rt) - before <= 1);
				check_label(line + 1, strlen(line + 1));
			} else {
				FZ_CHECK(memchr(err, 0, sizeof(err)) != NULL);
			}
		} else if (line[0] == '-') {
			__u64 h = weak_hash(line + 1, strlen(line + 1));

			routes_remember(rt, h, BS_ROUTE_UNRESOLVED);
			FZ_CHECK(routes_lookup_hash(rt, h, NULL) == -ENOENT);
			last[h] = BS_ROUTE_UNRESOLVED;
		} else {
			int trunc = line[0] == '!';
			const char *p = line + trunc;
			size_t n = strlen(p), len;
			unsigned long long over = routes_overflowed(rt);
			const char *got;
			__u64 h = weak_hash(p, n);
			__u32 id, id2;

			len = routes_label_for(rt, p, n, trunc, label);
			check_label(label, len);
			FZ_CHECK(routes_label_for(rt, p, n, trunc, again) == len);
			FZ_CHECK(!strcmp(label, again));
			id = routes_resolve(rt, p, n, trunc);
			got = routes_label(rt, id);
			FZ_CHECK(got != NULL);
			if (id == BS_ROUTE_OTHER) {
				FZ_CHECK(!strcmp(got, ROUTES_LABEL_OTHER));
				FZ_CHECK(routes_overflowed(rt) == over + 1);
			} else {
				FZ_CHECK(id >= BS_ROUTE_FIRST);
				FZ_CHECK(!strcmp(got, label));
				FZ_CHECK(routes_overflowed(rt) == over);
			}
			FZ_CHECK(routes_count(rt) <= max_routes);

			routes_remember(rt, h, id);
			FZ_CHECK(routes_lookup_hash(rt, h, &id2) == 0 && id2 == id);
			last[h] = id;
			for (__u64 k = 0; k < NHASH; k++)
				if (routes_lookup_hash(rt, k, &id2) == 0)
					FZ_CHECK(id2 == last[k]);
		}
		free(line);
	}
	FZ_CHECK(routes_count(rt) <= max_routes);
	routes_free(rt);
	return 0;
}
