/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Numeric values of command-line options (optval.c). */
#ifndef BUNSCOPE_USER_OPTVAL_H
#define BUNSCOPE_USER_OPTVAL_H

/* A byte count with an optional K, M, G or T suffix (powers of 1024; "KiB"
 * and "KB" too), non-zero; -EINVAL otherwise. */
int parse_bytes(const char *s, unsigned long long *out);
/* A decimal integer from min to max, nothing else; -EINVAL otherwise. */
int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif /* BUNSCOPE_USER_OPTVAL_H */
