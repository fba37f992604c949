/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * routes.h: raw request path -> low-cardinality route label (http_route).
 *
 * The rules are documented at the top of routes.c.  Not thread-safe: the
 * caller serialises every call on one table.
 */
#ifndef BUNSCOPE_ROUTES_H
#define BUNSCOPE_ROUTES_H

#include <stddef.h>
#include <linux/types.h>
#include "bunscope.h"

#define ROUTES_LABEL_MAX      160   /* bytes of a label, without the NUL */
#define ROUTES_REMEMBER_SLOTS 65536 /* hash -> id memory (power of two) */

#define ROUTES_LABEL_OTHER   "_other"	/* BS_ROUTE_OTHER */
#define ROUTES_LABEL_CONNECT "_connect" /* target not starting with '/' */
#define ROUTES_CUT_MARK	     "/..."	/* appended to cut labels */

struct route_table;

/* max_routes may be 0 (everything is _other).  NULL on ENOMEM. */
struct route_table *routes_new(unsigned int max_routes);
void routes_free(struct route_table *rt);

/*
 * Explicit template, e.g. "/users/:id/posts", or "/files/" followed by a '*'
 * segment ('*' only as the last segment: matches one or more remaining
 * segments).  Returns 0 or
 * -EINVAL (with a reason written to err/errlen when non-NULL), -ENOMEM.
 * Patterns are tried in the order added, before the heuristics.
 */
int routes_add_pattern(struct route_table *rt, const char *pattern, char *err, size_t errlen);

/*
 * Map a raw path to a route id (>= BS_ROUTE_FIRST, or BS_ROUTE_OTHER when
 * the table already holds max_routes routes and this would be a new one).
 */
__u32 routes_resolve(struct route_table *rt, const char *path, size_t len, int truncated);

/*
 * The label routes_resolve() would use for a path, without interning it.
 * out must hold ROUTES_LABEL_MAX + 1 bytes.  Returns the label length.
 */
size_t routes_label_for(const struct route_table *rt, const char *path, size_t len, int truncated,
			char *out);

/* "_other" for BS_ROUTE_OTHER, NULL if unknown. */
const char *routes_label(const struct route_table *rt, __u32 id);
/* Distinct routes, not counting _other. */
unsigned int routes_count(const struct route_table *rt);
/* routes_resolve() calls that returned BS_ROUTE_OTHER. */
unsigned long long routes_overflowed(const struct route_table *rt);

/*
 * Bounded memory of path hash -> route id, for kernel events that carry only
 * the hash.  At most ROUTES_REMEMBER_SLOTS entries; a newer hash may evict an
 * older one, so a lookup can miss but never answers for another hash.
 * Remembering id BS_ROUTE_UNRESOLVED forgets the hash.
 */
void routes_remember(struct route_table *rt, __u64 hash, __u32 id);
int routes_lookup_hash(const struct route_table *rt, __u64 hash, __u32 *id);

#endif /* BUNSCOPE_ROUTES_H */
