// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Target for the --uprobe tests: a function with a symbol, called on demand.
 *
 *   uprobe_target     prints "ready PID"; then for each line "go N US" on
 *                     stdin calls bunscope_test_work(US) N times and prints
 *                     "done N TOTAL_NS LE_1MS LE_10MS": its own timing of
 *                     the calls, in all and how many took at most 1 ms and
 *                     10 ms (a call's probed duration is within its timing);
 *                     exits at end of input
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) void bunscope_test_work(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	if (us)
		nanosleep(&ts, NULL);
	__asm__ volatile("" ::: "memory");
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	char line[128];
	long n, us;

	printf("ready %d\n", getpid());
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		long long total = 0, le_1ms = 0, le_10ms = 0;

		if (sscanf(line, "go %ld %ld", &n, &us) != 2)
			continue;
		for (long i = 0; i < n; i++) {
			long long t0 = now_ns(), d;

			bunscope_test_work(us);
			d = now_ns() - t0;
			total += d;
			le_1ms += d <= 1000000;
			le_10ms += d <= 10000000;
		}
		printf("done %ld %lld %lld %lld\n", n, total, le_1ms, le_10ms);
		fflush(stdout);
	}
	return 0;
}
