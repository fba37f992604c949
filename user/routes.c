// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * routes.c: raw request path -> route id -> label (http_route).
 *
 * The kernel captures the request-target up to the first '?' (at most
 * BS_PATH_MAX bytes, with a truncated flag) and a hash of it.  Every distinct
 * raw path would make its own Prometheus series, so routes_resolve() folds
 * paths into a small set of labels.  Rules, applied in this order:
 *
 *  1. Absolute-form targets "http://host[:port]/p" and "https://..." (scheme
 *     case-insensitive) become "/p"; the authority ends at the first '/', '?'
 *     or '#', and a target with nothing after the authority becomes "/".
 *  2. Anything from the first '?' or '#' is dropped.  If one was found, the
 *     path ended before the capture limit, so the truncated flag is ignored.
 *  3. An empty path is "/" (or "/..." when truncated: an absolute-form
 *     target whose authority alone filled the capture).
 *  4. A path that does not start with '/' (CONNECT's "host:443", OPTIONS'
 *     "*", garbage) is the fixed label "_connect".
 *  5. Explicit patterns, in the order added; the first match wins and its
 *     label is the pattern text.  Segments are split on '/'.  A pattern
 *     segment ":name" matches any one non-empty segment; "*" (last segment
 *     only) matches one or more remaining segments, i.e. a non-empty rest;
 *     other segments match literally and case-sensitively.  Trailing slashes
 *     count: "/users/:id" does not match "/users/7/".  A truncated path only
 *     matches a "*" pattern whose other segments were all captured whole.
 *  6. Otherwise heuristic templating, segment by segment, keeping empty
 *     segments ("//a" stays "//a", "/a/" stays "/a/").  A segment becomes
 *     ":id" when it is
 *       - all ASCII digits ("/users/42"),
 *       - a UUID, 8-4-4-4-12 hex digits in any case,
 *       - 16 or more hex digits with at least one decimal digit (object ids,
 *         hashes; "/deadbeefdeadbeef" is all letters and stays).
 *     Every other segment is kept as it is ("/cafe", "/v1").
 *  7. Label hygiene: a label is printable ASCII only, so nothing a client
 *     sends can break the exposition format, PromQL or Grafana.  Each byte
 *     outside 0x21..0x7e, each '"' and '\\' (the two bytes the exposition
 *     format would have to escape), and each '%' not followed by two hex
 *     digits is written as %XX (uppercase hex).  Existing %XX escapes are kept
 *     as they are.  Patterns must already obey this (they are rejected
 *     otherwise), so their text is used verbatim.
 *  8. Length: a label is at most ROUTES_LABEL_MAX (160) bytes.  When the path
 *     was truncated, its last segment is incomplete and is dropped.  When the
 *     path was truncated, or the label would be longer than 160 bytes, the
 *     label is cut after the last whole segment that leaves room for the
 *     marker "/...", which is appended ("/a/b/..."); if no whole segment fits
 *     the label is "/...".
 *  9. Cardinality: at most max_routes distinct labels, with ids from
 *     BS_ROUTE_FIRST up, kept for the life of the table.  Raw paths with the
 *     same label share its id.  Once the table is full, a path whose label is
 *     not already known maps to BS_ROUTE_OTHER ("_other") and is counted in
 *     routes_overflowed().
 * 10. Memory is bounded whatever the input: labels by max_routes (each at most
 *     161 bytes), the hash -> id memory by ROUTES_REMEMBER_SLOTS entries
 *     (direct-mapped: a newer hash overwrites the slot; full hashes are
 *     compared, so a lookup never answers for another hash).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "routes.h"

#define STR_(x)	     #x
#define STR(x)	     STR_(x)
#define CUT_MARK_LEN (sizeof(ROUTES_CUT_MARK) - 1)

struct label_slot {
	__u32 id;   /* BS_ROUTE_UNRESOLVED: empty */
	__u32 hash; /* low half of the label hash: skips most strcmp()s */
};

struct remember_slot {
	__u64 hash;
	__u32 id; /* BS_ROUTE_UNRESOLVED: empty */
	__u32 pad;
};

struct route_table {
	unsigned int max_routes;
	unsigned int count;
	unsigned long long overflowed;
	char **labels;		  /* [max_routes], by id - BS_ROUTE_FIRST */
	struct label_slot *slots; /* label -> id, linear probing */
	size_t slot_mask;
	char **patterns;
	size_t npatterns;
	size_t cap_patterns;
	struct remember_slot *remember; /* [ROUTES_REMEMBER_SLOTS] */
};

/* ---- table lifetime ----------------------------------------------------- */

struct route_table *routes_new(unsigned int max_routes)
{
	struct route_table *rt;
	size_t nslots = 16;

	/* at most half full, so probe chains stay short and always end */
	while (nslots < 2 * (size_t)max_routes)
		nslots <<= 1;

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	rt->max_routes = max_routes;
	rt->slot_mask = nslots - 1;
	rt->labels = calloc(max_routes ? max_routes : 1, sizeof(*rt->labels));
	rt->slots = calloc(nslots, sizeof(*rt->slots));
	rt->remember = calloc(ROUTES_REMEMBER_SLOTS, sizeof(*rt->remember));
	if (!rt->labels || !rt->slots || !rt->remember) {
		routes_free(rt);
		return NULL;
	}
	return rt;
}

void routes_free(struct route_table *rt)
{
	size_t i;

	if (!rt)
		return;
	if (rt->labels) {
		for (i = 0; i < rt->count; i++)
			free(rt->labels[i]);
	}
	for (i = 0; i < rt->npatterns; i++)
		free(rt->patterns[i]);
	free(rt->patterns);
	free(rt->labels);
	free(rt->slots);
	free(rt->remember);
	free(rt);
}

/* ---- bytes and segments ------------------------------------------------- */

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* End (index of the '/' or n) of the segment starting at i. */
static size_t seg_end(const char *s, size_t n, size_t i)
{
	const char *slash = i < n ? memchr(s + i, '/', n - i) : NULL;

	return slash ? (size_t)(slash - s) : n;
}

/* Rule 7: does s[i] have to be written as %XX? */
static bool needs_escape(const char *s, size_t n, size_t i)
{
	unsigned char c = s[i];

	if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
		return true;
	/* a '%' that does not start an escape would make the label ambiguous */
	if (c == '%')
		return !(i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2]));
	return false;
}

static size_t escaped_len(const char *s, size_t n)
{
	size_t i, len = 0;

	for (i = 0; i < n; i++)
		len += needs_escape(s, n, i) ? 3 : 1;
	return len;
}

static size_t escape_into(char *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, len = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (!needs_escape(s, n, i)) {
			out[len++] = c;
			continue;
		}
		out[len++] = '%';
		out[len++] = hex[c >> 4];
		out[len++] = hex[c & 0xf];
	}
	return len;
}

/* ---- heuristics (rule 6) ------------------------------------------------ */

static bool is_all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
	}
	return n > 0;
}

static bool is_uuid(const char *s, size_t n)
{
	size_t i;

	if (n != 36)
		return false;
	for (i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}

/* Hashes and object ids; all-letter words like "deadbeefdeadbeef" stay. */
static bool is_long_hex(const char *s, size_t n)
{
	bool digit = false;
	size_t i;

	if (n < 16)
		return false;
	for (i = 0; i < n; i++) {
		if (!is_hex(s[i]))
			return false;
		digit |= is_digit(s[i]);
	}
	return digit;
}

static bool segment_is_id(const char *s, size_t n)
{
	return is_all_digits(s, n) || is_uuid(s, n) || is_long_hex(s, n);
}

/*
 * Rules 6-8 on an origin-form path (p[0] == '/').  Labels are written segment
 * by segment into a fixed buffer, so any input length is fine; "keep" is the
 * longest prefix ending at a segment boundary that still leaves room for the
 * cut marker.
 */
static size_t template_path(const char *p, size_t n, bool truncated, char *out)
{
	size_t len = 0, keep = 0, i = 1, end, seg_len, need;
	bool id;

	for (;; i = end + 1) {
		end = seg_end(p, n, i);
		/* the capture stopped inside this segment: it is not a whole one */
		if (end == n && truncated)
			goto cut;
		seg_len = end - i;
		id = segment_is_id(p + i, seg_len);
		need = 1 + (id ? 3 : escaped_len(p + i, seg_len));
		if (len + need > ROUTES_LABEL_MAX)
			goto cut;
		out[len++] = '/';
		if (id) {
			memcpy(out + len, ":id", 3);
			len += 3;
		} else {
			len += escape_into(out + len, p + i, seg_len);
		}
		if (len + CUT_MARK_LEN <= ROUTES_LABEL_MAX)
			keep = len;
		if (end == n)
			break;
	}
	out[len] = '\0';
	return len;
cut:
	memcpy(out + keep, ROUTES_CUT_MARK, CUT_MARK_LEN + 1);
	return keep + CUT_MARK_LEN;
}

/* ---- explicit patterns (rule 5) ----------------------------------------- */

static const char *pattern_check(const char *pat)
{
	size_t n, i, end, seg_len;

	if (!pat || !*pat)
		return "empty pattern";
	if (pat[0] != '/')
		return "pattern must start with '/'";
	n = strlen(pat);
	if (n > ROUTES_LABEL_MAX)
		return "pattern longer than " STR(ROUTES_LABEL_MAX) " bytes";
	for (i = 0; i < n; i++) {
		if (pat[i] == '?' || pat[i] == '#')
			return "pattern must not contain '?' or '#'";
		/* the pattern text is the label: it must already be clean */
		if (needs_escape(pat, n, i))
			return "pattern contains a space, control byte, quote, "
			       "backslash, non-ASCII byte or lone '%'";
	}
	for (i = 1;; i = end + 1) {
		end = seg_end(pat, n, i);
		seg_len = end - i;
		if (seg_len == 1 && pat[i] == ':')
			return "empty parameter name after ':'";
		if (memchr(pat + i, '*', seg_len)) {
			if (seg_len != 1)
				return "'*' must be a whole segment";
			if (end != n)
				return "'*' must be the last segment";
		}
		if (end == n)
			return NULL;
	}
}

static __u32 label_intern(struct route_table *rt, const char *label, size_t len);

/*
 * Patterns reserve their label (and id) when they are added, so that a flood
 * of new paths can never push an operator's explicit routes into _other;
 * they count toward max_routes.
 */
int routes_add_pattern(struct route_table *rt, const char *pattern, char *err, size_t errlen)
{
	const char *why = pattern_check(pattern);
	char **grown, *copy;
	size_t cap;

	if (why) {
		if (err && errlen)
			snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	if (!rt)
		return -EINVAL;
	if (rt->npatterns == rt->cap_patterns) {
		cap = rt->cap_patterns ? 2 * rt->cap_patterns : 8;
		grown = realloc(rt->patterns, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		rt->patterns = grown;
		rt->cap_patterns = cap;
	}
	if (rt->count >= rt->max_routes) {
		if (err && errlen)
			snprintf(err, errlen, "more route patterns than --max-routes (%u)",
				 rt->max_routes);
		return -ENOSPC;
	}
	copy = strdup(pattern);
	if (!copy)
		return -ENOMEM;
	if (label_intern(rt, pattern, strlen(pattern)) == BS_ROUTE_OTHER) {
		free(copy);
		return -ENOMEM;
	}
	rt->patterns[rt->npatterns++] = copy;
	return 0;
}

/* Does origin-form path p (p[0] == '/') match pattern pat? */
static bool pattern_match(const char *pat, const char *p, size_t n, bool truncated)
{
	size_t pn = strlen(pat), pi = 1, pend, si = 1, send;

	for (;; pi = pend + 1, si = send + 1) {
		pend = seg_end(pat, pn, pi);
		if (pend - pi == 1 && pat[pi] == '*')
			return si < n || truncated;
		send = seg_end(p, n, si);
		/* the last captured segment of a truncated path is partial */
		if (send == n && truncated)
			return false;
		if (pend > pi && pat[pi] == ':') {
			if (send == si)
				return false;
		} else if (pend - pi != send - si || memcmp(pat + pi, p + si, send - si)) {
			return false;
		}
		if (pend == pn || send == n)
			return pend == pn && send == n;
	}
}

/* ---- resolving ---------------------------------------------------------- */

/* Rule 1: the path of an absolute-form target, or the target itself. */
static void strip_absolute(const char **p, size_t *n)
{
	static const char *const schemes[] = { "http://", "https://" };
	size_t i, k, slen;

	for (k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
		slen = strlen(schemes[k]);
		if (*n < slen || strncasecmp(*p, schemes[k], slen))
			continue;
		for (i = slen; i < *n; i++) {
			if ((*p)[i] == '/' || (*p)[i] == '?' || (*p)[i] == '#')
				break;
		}
		*p += i;
		*n -= i;
		return;
	}
}

/* Rule 2: drop query and fragment. */
static void strip_query(const char *p, size_t *n, bool *truncated)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (p[i] == '?' || p[i] == '#') {
			*n = i;
			*truncated = false;
			return;
		}
	}
}

static size_t put_label(char *out, const char *label)
{
	size_t len = strlen(label);

	memcpy(out, label, len + 1);
	return len;
}

size_t routes_label_for(const struct route_table *rt, const char *path, size_t len, int truncated,
			char *out)
{
	bool trunc = truncated != 0;
	size_t i;

	if (!path)
		return put_label(out, trunc ? ROUTES_CUT_MARK : "/");
	strip_absolute(&path, &len);
	strip_query(path, &len, &trunc);
	if (!len)
		return put_label(out, trunc ? ROUTES_CUT_MARK : "/");
	if (path[0] != '/')
		return put_label(out, ROUTES_LABEL_CONNECT);
	for (i = 0; rt && i < rt->npatterns; i++) {
		if (pattern_match(rt->patterns[i], path, len, trunc))
			return put_label(out, rt->patterns[i]);
	}
	return template_path(path, len, trunc, out);
}

/* FNV-1a: labels are short and the table holds at most max_routes of them. */
static __u64 label_hash(const char *s, size_t n)
{
	__u64 h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 32);
}

static __u32 label_intern(struct route_table *rt, const char *label, size_t len)
{
	__u64 h = label_hash(label, len);
	struct label_slot *slot;
	size_t i = h & rt->slot_mask;
	char *copy;

	for (;; i = (i + 1) & rt->slot_mask) {
		slot = &rt->slots[i];
		if (slot->id == BS_ROUTE_UNRESOLVED)
			break;
		if (slot->hash == (__u32)h && !strcmp(rt->labels[slot->id - BS_ROUTE_FIRST], label))
			return slot->id;
	}
	if (rt->count >= rt->max_routes)
		goto other;
	copy = strndup(label, len);
	if (!copy)
		goto other;
	rt->labels[rt->count] = copy;
	slot->id = BS_ROUTE_FIRST + rt->count++;
	slot->hash = (__u32)h;
	return slot->id;
other:
	rt->overflowed++;
	return BS_ROUTE_OTHER;
}

__u32 routes_resolve(struct route_table *rt, const char *path, size_t len, int truncated)
{
	char label[ROUTES_LABEL_MAX + 1];
	size_t n;

	if (!rt)
		return BS_ROUTE_OTHER;
	n = routes_label_for(rt, path, len, truncated, label);
	return label_intern(rt, label, n);
}

const char *routes_label(const struct route_table *rt, __u32 id)
{
	if (id == BS_ROUTE_OTHER)
		return ROUTES_LABEL_OTHER;
	if (!rt || id < BS_ROUTE_FIRST || id - BS_ROUTE_FIRST >= rt->count)
		return NULL;
	return rt->labels[id - BS_ROUTE_FIRST];
}

unsigned int routes_count(const struct route_table *rt)
{
	return rt ? rt->count : 0;
}

unsigned long long routes_overflowed(const struct route_table *rt)
{
	return rt ? rt->overflowed : 0;
}

/* ---- hash -> id memory (rule 10) ---------------------------------------- */

/* The kernel's path hash may be weak in its low bits: mix before masking. */
static size_t remember_index(__u64 hash)
{
	hash ^= hash >> 33;
	hash *= 0xff51afd7ed558ccdULL;
	hash ^= hash >> 33;
	hash *= 0xc4ceb9fe1a85ec53ULL;
	hash ^= hash >> 33;
	return hash & (ROUTES_REMEMBER_SLOTS - 1);
}

void routes_remember(struct route_table *rt, __u64 hash, __u32 id)
{
	struct remember_slot *slot;

	if (!rt)
		return;
	slot = &rt->remember[remember_index(hash)];
	if (id == BS_ROUTE_UNRESOLVED) {
		/* forget only our own entry, never a neighbour's */
		if (slot->hash == hash)
			slot->id = BS_ROUTE_UNRESOLVED;
		return;
	}
	/* direct-mapped: the newest hash wins the slot */
	slot->hash = hash;
	slot->id = id;
}

int routes_lookup_hash(const struct route_table *rt, __u64 hash, __u32 *id)
{
	const struct remember_slot *slot;

	if (!rt)
		return -ENOENT;
	slot = &rt->remember[remember_index(hash)];
	if (slot->id == BS_ROUTE_UNRESOLVED || slot->hash != hash)
		return -ENOENT;
	if (id)
		*id = slot->id;
	return 0;
}
