// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Target for the --uprobe tests: a function with a symbol, called on demand.
 *
 *   uprobe_target     prints "ready PID"; then for each line "go N US" on
 *                     stdin calls bunscope_test_work(US) N times and prints
 *                     "done N TOTAL_NS" (its own timing of the calls);
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
		long long total = 0;

		if (sscanf(line, "go %ld %ld", &n, &us) != 2)
			continue;
		for (long i = 0; i < n; i++) {
			long long t0 = now_ns();

			bunscope_test_work(us);
			total += now_ns() - t0;
		}
		printf("done %ld %lld\n", n, total);
		fflush(stdout);
	}
	return 0;
}
