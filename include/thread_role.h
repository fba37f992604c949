/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The role of a Bun thread, from its name (the kernel's 16-byte comm).
 * Shared by the BPF side (sched_switch) and the unit tests.
 *
 * Names as the release binary sets them (WTF keeps the last 15 characters
 * of names that do not fit: "JSC Heap Collector Thread" is "ollector Thread"):
 *   HeapHelper          parallel GC marking threads
 *   ollector Thread     JSC's concurrent collector ("JSC Heap Collec" too)
 *   mi-scavenger        mimalloc returning freed memory to the kernel
 *   JITWorker           the optimising JIT compilers
 *   HTTP Client         fetch()
 * The JS thread is the one whose tid is the pid, whatever its name.
 */
#ifndef BUNSCOPE_THREAD_ROLE_H
#define BUNSCOPE_THREAD_ROLE_H

#include "bunscope.h"

#ifdef __bpf__
#define TR_INLINE static __always_inline
#else
#define TR_INLINE static inline
#endif

#define BS_COMM_LEN 16

/* comm starts with the NUL-terminated p (which is shorter than BS_COMM_LEN) */
TR_INLINE int tr_prefix(const char *comm, const char *p, int n)
{
	for (int i = 0; i < n && i < BS_COMM_LEN; i++)
		if (comm[i] != p[i])
			return 0;
	return 1;
}

#define TR_IS(comm, lit) tr_prefix((comm), (lit), (int)sizeof(lit) - 1)

TR_INLINE __u32 bs_thread_role(const char *comm, __u32 tid, __u32 tgid)
{
	if (tid == tgid)
		return BS_ROLE_JS;
	switch (comm[0]) {
	case 'H':
		if (TR_IS(comm, "HeapHelper"))
			return BS_ROLE_GC_HELPER;
		if (TR_IS(comm, "HTTP Client"))
			return BS_ROLE_HTTP_CLIENT;
		break;
	case 'o':
		if (TR_IS(comm, "ollector Thread"))
			return BS_ROLE_GC_COLLECTOR;
		break;
	case 'J':
		if (TR_IS(comm, "JSC Heap Collec"))
			return BS_ROLE_GC_COLLECTOR;
		if (TR_IS(comm, "JITWorker"))
			return BS_ROLE_JIT;
		break;
	case 'm':
		if (TR_IS(comm, "mi-scavenger"))
			return BS_ROLE_ALLOCATOR;
		break;
	}
	return BS_ROLE_OTHER;
}

TR_INLINE int bs_role_is_gc(__u32 role)
{
	return role == BS_ROLE_GC_HELPER || role == BS_ROLE_GC_COLLECTOR;
}

#endif /* BUNSCOPE_THREAD_ROLE_H */
