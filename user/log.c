// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>

#include "log.h"

static enum log_level cur_level = LOG_INFO;

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	flockfile(stderr);
	fputs("bunscope: ", stderr);
	vfprintf(stderr, fmt, ap);
	funlockfile(stderr);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && cur_level < LOG_DEBUG)
		return 0;
	/* libbpf's info messages are noise for operators unless -v */
	if (level == LIBBPF_INFO && cur_level < LOG_DEBUG)
		return 0;
	flockfile(stderr);
	fputs("bunscope: libbpf: ", stderr);
	vfprintf(stderr, fmt, ap);
	funlockfile(stderr);
	return 0;
}

void log_setup_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
