/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef BUNSCOPE_BENCH_H
#define BUNSCOPE_BENCH_H

/* bunscope bench-parse: print the kernel cost of parsing sample exchanges. */
int bench_parse_run(unsigned long iterations);

#endif /* BUNSCOPE_BENCH_H */
