// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for include/thread_role.h: the thread names the release Bun
 * binary uses, the JS thread by tid, and names that only look alike.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <linux/types.h>

#include "thread_role.h"

/* the role of name as the kernel stores it: at most 15 bytes, NUL-padded */
static __u32 role_of(const char *name, __u32 tid, __u32 tgid)
{
	char comm[BS_COMM_LEN] = {};
	size_t n = strlen(name);

	memcpy(comm, name, n < BS_COMM_LEN - 1 ? n : BS_COMM_LEN - 1);
	return bs_thread_role(comm, tid, tgid);
}

/* names of threads other than the main one, and the role each must get */
static const struct {
	const char *name;
	__u32 role;
} names[] = {
	/* the release binary's threads */
	{ "HeapHelper", BS_ROLE_GC_HELPER },
	{ "ollector Thread", BS_ROLE_GC_COLLECTOR },
	{ "JSC Heap Collec", BS_ROLE_GC_COLLECTOR },
	{ "mi-scavenger", BS_ROLE_ALLOCATOR },
	{ "JITWorker", BS_ROLE_JIT },
	{ "HTTP Client", BS_ROLE_HTTP_CLIENT },
	{ "JSCWarmUp", BS_ROLE_OTHER },
	{ "Bun Pool 0", BS_ROLE_OTHER },
	{ "bun", BS_ROLE_OTHER },
	{ "", BS_ROLE_OTHER },
	/* names that only look alike */
	{ "HeapHelpe", BS_ROLE_OTHER },
	{ "heaphelper", BS_ROLE_OTHER },
	{ "HTTP Clien", BS_ROLE_OTHER },
	{ "JIT", BS_ROLE_OTHER },
	{ "mi-scav", BS_ROLE_OTHER },
	{ "ollector", BS_ROLE_OTHER },
};

static void test_thread_names(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		__u32 got = role_of(names[i].name, 11, 10);

		if (got != names[i].role)
			fail_msg("\"%s\": role %u, expected %u", names[i].name, got, names[i].role);
	}
	assert_true(bs_role_is_gc(BS_ROLE_GC_HELPER) && bs_role_is_gc(BS_ROLE_GC_COLLECTOR));
	assert_false(bs_role_is_gc(BS_ROLE_JS) || bs_role_is_gc(BS_ROLE_ALLOCATOR));
}

static void test_js_thread_by_tid(void **state)
{
	(void)state;
	/* the main thread is the JS thread whatever its name */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(role_of(names[i].name, 10, 10), BS_ROLE_JS);
	assert_int_equal(role_of("node", 4242, 4242), BS_ROLE_JS);
}

/* Every 16-byte comm, NUL-terminated or not, gives a role in range. */
static void test_random_comms(void **state)
{
	__u64 x = 0x243f6a8885a308d3ULL;

	(void)state;
	for (int n = 0; n < 200000; n++) {
		char comm[BS_COMM_LEN];

		for (int i = 0; i < BS_COMM_LEN; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* mostly the letters that start the names, to reach deep */
			comm[i] = (x & 3) ? "HomJ"[(x >> 2) & 3] : (char)(x >> 8);
		}
		assert_in_range(bs_thread_role(comm, 2, 1), 0, BS_ROLES - 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_names),
		cmocka_unit_test(test_js_thread_by_tid),
		cmocka_unit_test(test_random_comms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
