// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for the numeric option values (user/optval.c): byte counts with
 * suffixes and bounded integers, and what they refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../user/optval.h"

static void test_bytes(void **state)
{
	static const struct {
		const char *s;
		unsigned long long v;
	} ok[] = {
		{ "4096", 4096 },
		{ "4K", 4096 },
		{ "512KiB", 512ULL << 10 },
		{ "64m", 64ULL << 20 },
		{ "4G", 4ULL << 30 },
		{ "1TB", 1ULL << 40 },
		{ "3Ki", 3072 },
		{ "18446744073709551615", ~0ULL },
	};
	/* " -1" and " 5": strtoull() skips blanks and negates, the first was 2^64 - 1 */
	static const char *const bad[] = {
		"",	     "0",  "0K", "-1",	 " -1", "\t-1",
		" 5",	     "+5", "4X", "4KB2", "4 K", "18446744073709551616",
		"16777216T",
	};
	unsigned long long v;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 0;
		assert_int_equal(parse_bytes(ok[i].s, &v), 0);
		assert_true(v == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_bytes(bad[i], &v), -EINVAL);
}

static void test_uint(void **state)
{
	unsigned long v = 0;

	(void)state;
	assert_int_equal(parse_uint("9464", 1, 65535, &v), 0);
	assert_int_equal(v, 9464);
	assert_int_equal(parse_uint("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_uint("65535", 1, 65535, &v), 0);
	assert_int_equal(parse_uint("65536", 1, 65535, &v), -EINVAL);
	assert_int_equal(parse_uint("0", 1, 65535, &v), -EINVAL);
	/* only digits: no blanks, no sign (strtoul() would take both) */
	assert_int_equal(parse_uint(" 7", 1, 65535, &v), -EINVAL);
	assert_int_equal(parse_uint("+7", 1, 65535, &v), -EINVAL);
	assert_int_equal(parse_uint("-1", 0, ~0UL, &v), -EINVAL);
	assert_int_equal(parse_uint(" -1", 0, ~0UL, &v), -EINVAL);
	assert_int_equal(parse_uint("", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint("7x", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_uint("99999999999999999999999", 0, ~0UL, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_uint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
