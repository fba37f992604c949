/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * fuzz.h: what the libFuzzer targets in tests/fuzz/ share: FZ_CHECK (a
 * broken invariant aborts, so libFuzzer keeps the input as a crash) and a
 * reader that takes the input apart (bytes, little-endian numbers, runs).
 */
#ifndef BUNSCOPE_FUZZ_H
#define BUNSCOPE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(cond)                                                                       \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline int fz_u8(struct fz *f, uint8_t *out)
{
	if (!f->n)
		return -1;
	*out = *f->p++;
	f->n--;
	return 0;
}

static inline int fz_u16(struct fz *f, uint16_t *out)
{
	if (f->n < 2)
		return -1;
	*out = (uint16_t)(f->p[0] | f->p[1] << 8);
	f->p += 2;
	f->n -= 2;
	return 0;
}

/* Up to want bytes of the input (fewer where it ends); *got says how many. */
static inline const uint8_t *fz_take(struct fz *f, size_t want, size_t *got)
{
	const uint8_t *p = f->p;

	*got = want < f->n ? want : f->n;
	f->p += *got;
	f->n -= *got;
	return p;
}

/*
 * The input up to the next byte sep (not included), as a malloc()ed
 * NUL-terminated string; the separator is consumed.  NULL when the input has
 * been used up.  Callers free() it.
 */
static inline char *fz_field(struct fz *f, uint8_t sep)
{
	const uint8_t *e;
	size_t len;
	char *s;

	if (!f->n)
		return NULL;
	e = memchr(f->p, sep, f->n);
	len = e ? (size_t)(e - f->p) : f->n;
	s = malloc(len + 1);
	FZ_CHECK(s != NULL);
	memcpy(s, f->p, len);
	s[len] = 0;
	f->p += len + (e ? 1 : 0);
	f->n -= len + (e ? 1 : 0);
	return s;
}

/* A malloc()ed copy of exactly n bytes, so that ASan sees a read past them. */
static inline uint8_t *fz_dup(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	FZ_CHECK(d != NULL);
	if (n)
		memcpy(d, p, n);
	return d;
}

#endif /* BUNSCOPE_FUZZ_H */
