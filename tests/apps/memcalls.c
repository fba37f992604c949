// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Ground truth for the memory-syscall counters: waits for a line on stdin,
 * then makes exactly the calls it prints, then waits for another line.
 *
 *   memcalls ROUNDS   each round: mmap 3 pages, madvise(DONTNEED) 2 of them,
 *                     madvise(FREE) 1, munmap all 3; then brk +64 KiB, -64 KiB
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 10;
	long page = sysconf(_SC_PAGESIZE);
	char line[64];
	unsigned long cur;

	printf("ready %d\n", getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	for (int i = 0; i < rounds; i++) {
		char *p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);

		if (p == MAP_FAILED)
			return 1;
		memset(p, 1, 3 * page);
		if (madvise(p, 2 * page, MADV_DONTNEED) || madvise(p + 2 * page, page, MADV_FREE))
			return 1;
		if (munmap(p, 3 * page))
			return 1;
	}
	/* raw brk: glibc's sbrk caches the break */
	cur = (unsigned long)syscall(SYS_brk, 0);
	syscall(SYS_brk, cur + 65536);
	syscall(SYS_brk, cur);
	printf("done mmap=%d bytes=%ld madvise_dontneed=%d bytes=%ld madvise_free=%d bytes=%ld "
	       "munmap=%d bytes=%ld brk=3 grow=65536 shrink=65536\n",
	       rounds, rounds * 3 * page, rounds, rounds * 2 * page, rounds, rounds * page, rounds,
	       rounds * 3 * page);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return 0;
}
