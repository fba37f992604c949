// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * optval.c: the numeric values of command-line options (sizes, counts,
 * ports), apart from main.c so that the fuzzers can reach them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "optval.h"

/* A byte count with an optional K, M, G or T suffix (powers of 1024; "KiB" and "KB" too). */
int parse_bytes(const char *s, unsigned long long *out)
{
	static const char *const units = "KMGT";
	unsigned long long v, mul = 1;
	char *end;

	/* strtoull() would skip blanks and take a sign: " -1" is 2^64 - 1 */
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		const char *u = strchr(units, end[0] & ~0x20);

		if (!u || !*u)
			return -EINVAL;
		mul = 1ULL << (10 * (u - units + 1));
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B") || !strcmp(end, "i"))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	if (!v || v > ~0ULL / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL; /* no blanks or sign for strtoul() to take */
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}
