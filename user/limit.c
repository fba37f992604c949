// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The daemon side of the limiter (bpf/limit.bpf.c): load it reusing the
 * state pinned under /sys/fs/bpf/bunscope, write its configuration, attach
 * it (native XDP, then generic XDP, then tc clsact ingress), export its
 * counters; and `bunscope limit status|detach`, which work on the pinned
 * state alone.
 *
 * Enforcement outlives the daemon on purpose: XDP links and the tc filter
 * stay attached when it exits or is killed, so a restart opens no window.
 * `bunscope limit detach` is the way to remove it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "expo.h"
#include "limiter.h"
#include "loader.h"
#include "log.h"
#include "limit.skel.h"

#define TC_HANDLE 0xb5c0
#define TC_PRIO	  1

struct ban {
	struct bs_lim_key key;
	__u64 until;
};

struct limiter {
	struct limit_bpf *skel;
	struct limit_opts o;
	const struct bs_lim_bucket *src; /* lim_src, mapped read-only */
	size_t src_len;
	__u64 ports[BS_LIM_PORT_WORDS]; /* lim_ports as last written */
	__u32 nbuckets;
	__u64 idle_ns;
	__u32 coarse; /* the program reads the coarse clock */
	int ncpus;
	/* the bans as last read: rescanned when the observer made one, when
	 * one ends, and every 10 s (the CLI may have changed them) */
	struct ban *bans;
	int nbans;
	__u64 bans_made_seen, bans_next_scan;
	bool tripped; /* the daemon's thresholds, last tick */
};

static const char *const mode_names[] = {
	[BS_LIM_MODE_NONE] = "none",
	[BS_LIM_MODE_XDP_NATIVE] = "native XDP",
	[BS_LIM_MODE_XDP_GENERIC] = "generic XDP",
	[BS_LIM_MODE_TC] = "tc ingress",
};

static const char *const shed_names[] = {
	[BS_SHED_CLOSED] = "closed",
	[BS_SHED_OPEN] = "open",
	[BS_SHED_HALF_OPEN] = "half_open",
};

static const char *const mode_labels[] = {
	[BS_LIM_MODE_NONE] = "none",
	[BS_LIM_MODE_XDP_NATIVE] = "xdp_native",
	[BS_LIM_MODE_XDP_GENERIC] = "xdp_generic",
	[BS_LIM_MODE_TC] = "tc",
};

bool limit_enabled(const struct limit_opts *o)
{
	return o->nifaces > 0;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* The coarse clock's resolution (a timer tick), 0 if unknown. */
static __u64 coarse_res_ns(void)
{
	struct timespec ts;

	if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts))
		return 0;
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static void link_path(char *buf, size_t len, const char *ifname)
{
	snprintf(buf, len, "%s/link_xdp_%s", BS_LIM_PIN_DIR, ifname);
}

/*
 * Pinned maps of another shape cannot be reused: a source table of another
 * --limit-clients, or anything of a bunscope with another layout.  Say
 * which, and how to start afresh, instead of libbpf's "parameter mismatch".
 */
static int check_pinned(struct limit_bpf *skel, __u32 clients)
{
	struct bpf_map *map;

	bpf_object__for_each_map (map, skel->obj) {
		const char *path = bpf_map__pin_path(map);
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		int fd, err = 0;

		if (!path || (fd = bpf_obj_get(path)) < 0)
			continue; /* none yet: created at load */
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			err = -errno;
			pr_warn("limiter: cannot read %s: %s\n", path, strerror(-err));
		} else if (info.type != bpf_map__type(map) ||
			   info.key_size != bpf_map__key_size(map) ||
			   info.value_size != bpf_map__value_size(map) ||
			   info.map_flags != bpf_map__map_flags(map)) {
			err = -EINVAL;
			pr_warn("limiter: %s is another bunscope version's (%s, key %u, value %u "
				"bytes; this one's: %s, %u, %u); 'bunscope limit detach' removes "
				"the limiter's state (counters and bans too)\n",
				path, libbpf_bpf_map_type_str(info.type), info.key_size,
				info.value_size, libbpf_bpf_map_type_str(bpf_map__type(map)),
				bpf_map__key_size(map), bpf_map__value_size(map));
		} else if (info.max_entries != bpf_map__max_entries(map)) {
			err = -EINVAL;
			if (map == skel->maps.lim_src)
				pr_warn("limiter: the source table pinned at %s has %u slots, not "
					"the %u of --limit-clients; give --limit-clients %u, or "
					"'bunscope limit detach' removes the limiter's state "
					"(counters and bans too)\n",
					path, info.max_entries * 2, clients, info.max_entries * 2);
			else
				pr_warn("limiter: %s is another bunscope version's (%u entries, "
					"this one's %u); 'bunscope limit detach' removes the "
					"limiter's state (counters and bans too)\n",
					path, info.max_entries, bpf_map__max_entries(map));
		}
		close(fd);
		if (err)
			return err;
	}
	return 0;
}

/* The limiter's object, opened with the map sizes of o, not loaded. */
static struct limit_bpf *open_skel(const struct limit_opts *o)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = BS_LIM_PIN_DIR);
	struct limit_bpf *skel = limit_bpf__open_opts(&oo);
	struct bpf_map *src;

	if (!skel) {
		pr_warn("limiter: cannot open its BPF object: %s\n", strerror(errno));
		return NULL;
	}
	src = skel->maps.lim_src;
	bpf_map__set_max_entries(src, o->clients / 2);
	bpf_map__set_map_flags(src, bpf_map__map_flags(src) | BPF_F_MMAPABLE);
	return skel;
}

/*
 * One daemon runs the limiter at a time: two would each write their ports,
 * configuration and breaker into the same pinned maps and undo each other.
 * The claim is an flock on the pin directory, held for the daemon's life;
 * the kernel drops it when the daemon dies, SIGKILL included.
 */
static int pin_lock_fd = -1;

/* The pid holding an flock on (dev, ino), from /proc/locks; 0 if unknown. */
static int flock_holder(dev_t dev, ino_t ino)
{
	FILE *fp = fopen("/proc/locks", "re");
	char line[256], type[16];
	unsigned int maj, min;
	unsigned long long inode;
	int pid, holder = 0;

	while (fp && !holder && fgets(line, sizeof(line), fp)) {
		/* "1: FLOCK  ADVISORY  WRITE 1234 00:27:1 0 EOF"; a waiter has
		 * "->" where FLOCK is */
		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", type, &pid, &maj, &min,
			   &inode) == 5 &&
		    !strcmp(type, "FLOCK") && makedev(maj, min) == dev &&
		    inode == (unsigned long long)ino)
			holder = pid;
	}
	if (fp)
		fclose(fp);
	return holder;
}

/*
 * Take the claim: the locked directory's fd, or -errno (-EWOULDBLOCK with
 * *holder the daemon's pid, 0 if unknown, when another process has it).
 */
static int lock_pins(int *holder)
{
	struct stat st;
	int fd, err;

	*holder = 0;
	fd = open(BS_LIM_PIN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!flock(fd, LOCK_EX | LOCK_NB))
		return fd;
	err = -errno;
	if (err == -EWOULDBLOCK && !fstat(fd, &st))
		*holder = flock_holder(st.st_dev, st.st_ino);
	close(fd);
	return err;
}

static int claim_pins(void)
{
	int err, holder;

	if (pin_lock_fd >= 0)
		return 0;
	err = lock_pins(&holder);
	if (err >= 0) {
		pin_lock_fd = err;
		return 0;
	}
	if (err != -EWOULDBLOCK) {
		pr_warn("limiter: cannot lock %s: %s\n", BS_LIM_PIN_DIR, strerror(-err));
		return err;
	}
	if (holder)
		pr_warn("limiter: another bunscope (pid %d) runs the limiter (state in %s); two "
			"would undo each other's ports and settings: stop that one first (its "
			"enforcement stays attached and this one takes it over), or start this one "
			"without limiter options to observe only\n",
			holder, BS_LIM_PIN_DIR);
	else
		pr_warn("limiter: another bunscope runs the limiter (state in %s, locked); stop "
			"it first, or start this one without limiter options to observe only\n",
			BS_LIM_PIN_DIR);
	return -EBUSY;
}

int limit_prepare_pins(const struct limit_opts *o)
{
	struct limit_bpf *skel;
	int err;

	if (!loader_bpffs_mounted()) {
		if (mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL)) {
			pr_warn("limiter: bpffs is not mounted and mounting it failed (%s); run: "
				"mount -t bpf bpf /sys/fs/bpf\n",
				strerror(errno));
			return -errno;
		}
		pr_info("mounted bpffs on /sys/fs/bpf (it was not mounted)\n");
	}
	if (mkdir(BS_LIM_PIN_DIR, 0700) && errno != EEXIST) {
		pr_warn("limiter: cannot create %s: %s\n", BS_LIM_PIN_DIR, strerror(errno));
		return -errno;
	}
	if ((err = claim_pins()))
		return err;
	/* before the observer, which shares lim_bans and lim_stats, loads */
	skel = open_skel(o);
	if (!skel)
		return -EINVAL;
	err = check_pinned(skel, o->clients);
	limit_bpf__destroy(skel);
	return err;
}

/* Empty an LPM trie, then fill it with the CIDRs of one family. */
static int fill_trie(int fd, const struct limit_cidr *list, int n, int v6)
{
	struct bs_lim_lpm6 key, next;
	__u32 one = 1;
	int added = 0;

	/* the trie's keys are of its own size; lpm6 is the larger one */
	while (!bpf_map_get_next_key(fd, NULL, &next))
		if (bpf_map_delete_elem(fd, &next))
			break;
	for (int i = 0; i < n; i++) {
		if (list[i].v6 != v6)
			continue;
		memset(&key, 0, sizeof(key));
		key.prefixlen = list[i].prefix;
		memcpy(key.addr, list[i].addr, v6 ? 16 : 4);
		if (bpf_map_update_elem(fd, &key, &one, BPF_ANY))
			return -errno;
		added++;
	}
	return added;
}

static int write_config(struct limiter *l)
{
	const struct limit_opts *o = &l->o;
	struct bs_lim_cfg old = {}, c = {};
	__u32 zero = 0;
	int fd = bpf_map__fd(l->skel->maps.lim_cfg), r;
	__u64 longest;
	struct {
		int fd, v6;
		const struct limit_cidr *list;
		int n;
		__u32 bit;
	} tries[] = {
		{ bpf_map__fd(l->skel->maps.lim_allow4), 0, o->allow, o->nallow,
		  BS_LIM_LIST_ALLOW4 },
		{ bpf_map__fd(l->skel->maps.lim_deny4), 0, o->deny, o->ndeny, BS_LIM_LIST_DENY4 },
		{ bpf_map__fd(l->skel->maps.lim_allow6), 1, o->allow, o->nallow,
		  BS_LIM_LIST_ALLOW6 },
		{ bpf_map__fd(l->skel->maps.lim_deny6), 1, o->deny, o->ndeny, BS_LIM_LIST_DENY6 },
	};

	bpf_map_lookup_elem(fd, &zero, &old);
	if (o->conn_rate)
		lim_rate_init(&c.conn, o->conn_rate, o->conn_burst);
	if (o->pkt_rate)
		lim_rate_init(&c.pkt, o->pkt_rate, o->pkt_burst);
	c.algo = o->algo;
	c.slots_mask = l->nbuckets - 1;
	c.v6_prefix = o->v6_prefix;
	/* a slot is free once its limits would have refilled completely */
	longest = c.conn.window > c.pkt.window ? c.conn.window : c.pkt.window;
	c.idle_ns = 2 * longest > 10 * BS_LIM_NSEC ? 2 * longest : 10 * BS_LIM_NSEC;
	l->idle_ns = c.idle_ns;
	c.coarse = lim_coarse_ok(&c, coarse_res_ns());
	l->coarse = c.coarse;
	/* the same seed as the pinned state's, so its sources stay where they are */
	c.seed = old.seed;
	if (!c.seed && getrandom(&c.seed, sizeof(c.seed), 0) != sizeof(c.seed))
		c.seed = mono_ns() * 0x9E3779B97F4A7C15ULL;
	/* the lists before the bits that make the program read them */
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		r = fill_trie(tries[i].fd, tries[i].list, tries[i].n, tries[i].v6);
		if (r < 0) {
			pr_warn("limiter: cannot fill an allow/deny list: %s\n", strerror(-r));
			return r;
		}
		if (r)
			c.lists |= tries[i].bit;
	}
	/* bans are looked up per packet only when there can be any: the
	 * observer makes them (--limit-req), or an earlier one or the CLI did */
	{
		struct bs_lim_key k;

		if (o->req_rate ||
		    !bpf_map_get_next_key(bpf_map__fd(l->skel->maps.lim_bans), NULL, &k))
			c.lists |= BS_LIM_LIST_BANS;
	}
	if (limit_shed_enabled(o)) {
		c.shed = 1;
		c.shed_pending = o->shed_pending;
		c.shed_low = o->shed_low;
		c.shed_probe_pct = o->shed_probe_pct;
		c.shed_open_ns = (__u64)(o->shed_open * 1e9);
		c.shed_probe_ns =
			c.shed_open_ns / 2 > BS_LIM_NSEC / 2 ? c.shed_open_ns / 2 : BS_LIM_NSEC / 2;
	}
	c.enabled = 1;
	if (bpf_map_update_elem(fd, &zero, &c, BPF_ANY)) {
		pr_warn("limiter: cannot write the configuration: %s\n", strerror(errno));
		return -errno;
	}
	return 0;
}

static int record_iface(struct limiter *l, __u32 ifindex, const char *name, __u32 mode)
{
	int fd = bpf_map__fd(l->skel->maps.lim_ifaces);
	struct bs_lim_iface e;
	int free_slot = -1;

	for (__u32 i = 0; i < BS_LIM_MAX_IFACES; i++) {
		if (bpf_map_lookup_elem(fd, &i, &e))
			continue;
		if (e.mode != BS_LIM_MODE_NONE && e.ifindex == ifindex) {
			free_slot = (int)i;
			break;
		}
		if (e.mode == BS_LIM_MODE_NONE && free_slot < 0)
			free_slot = (int)i;
	}
	if (free_slot < 0)
		return -ENOSPC;
	memset(&e, 0, sizeof(e));
	e.ifindex = ifindex;
	e.mode = mode;
	snprintf(e.name, sizeof(e.name), "%s", name);
	return bpf_map_update_elem(fd, &free_slot, &e, BPF_ANY) ? -errno : 0;
}

/* The XDP mode an earlier daemon attached ifindex with (native if unrecorded). */
static __u32 recorded_mode(struct limiter *l, __u32 ifindex)
{
	int fd = bpf_map__fd(l->skel->maps.lim_ifaces);
	struct bs_lim_iface e;

	for (__u32 i = 0; i < BS_LIM_MAX_IFACES; i++)
		if (!bpf_map_lookup_elem(fd, &i, &e) && e.ifindex == ifindex &&
		    (e.mode == BS_LIM_MODE_XDP_NATIVE || e.mode == BS_LIM_MODE_XDP_GENERIC))
			return e.mode;
	return BS_LIM_MODE_XDP_NATIVE;
}

static int attach_xdp(struct limiter *l, __u32 ifindex, const char *name, __u32 flags)
{
	int prog = bpf_program__fd(l->skel->progs.bs_xdp_limit), fd;
	char path[128];
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);

	fd = bpf_link_create(prog, (int)ifindex, BPF_XDP, &opts);
	if (fd < 0)
		return -errno;
	link_path(path, sizeof(path), name);
	if (bpf_obj_pin(fd, path)) {
		int err = -errno;

		close(fd); /* the link goes with its last reference */
		pr_warn("limiter: cannot pin the XDP link of %s at %s: %s\n", name, path,
			strerror(-err));
		return err;
	}
	close(fd);
	return 0;
}

static int attach_tc(struct limiter *l, __u32 ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIO,
		    .flags = BPF_TC_F_REPLACE,
		    .prog_fd = bpf_program__fd(l->skel->progs.bs_tc_limit));
	int err = bpf_tc_hook_create(&hook);

	if (err && err != -EEXIST)
		return err;
	return bpf_tc_attach(&hook, &opts);
}

/* Attach to one interface, or move an earlier attachment to this program. */
static int attach_iface(struct limiter *l, const char *name, __u32 *mode)
{
	__u32 ifindex = if_nametoindex(name);
	char path[128];
	int fd, err;

	if (!ifindex) {
		pr_warn("limiter: no interface '%s' (see: ip link)\n", name);
		return -ENODEV;
	}
	link_path(path, sizeof(path), name);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		/* a link a previous daemon left: keep it and its mode, new program */
		err = bpf_link_update(fd, bpf_program__fd(l->skel->progs.bs_xdp_limit), NULL);
		close(fd);
		if (err) { /* libbpf returns -errno */
			pr_warn("limiter: cannot update the XDP link of %s: %s\n", name,
				strerror(-err));
			return err;
		}
		*mode = recorded_mode(l, ifindex);
		return record_iface(l, ifindex, name, *mode);
	}
	err = -EOPNOTSUPP;
	if (l->o.mode != LIMIT_MODE_TC) {
		err = attach_xdp(l, ifindex, name, XDP_FLAGS_DRV_MODE);
		*mode = BS_LIM_MODE_XDP_NATIVE;
		if (err) {
			pr_debug("limiter: native XDP on %s: %s\n", name, strerror(-err));
			err = attach_xdp(l, ifindex, name, XDP_FLAGS_SKB_MODE);
			*mode = BS_LIM_MODE_XDP_GENERIC;
		}
		if (err)
			pr_debug("limiter: generic XDP on %s: %s\n", name, strerror(-err));
	}
	if (err && l->o.mode != LIMIT_MODE_XDP) {
		err = attach_tc(l, ifindex);
		*mode = BS_LIM_MODE_TC;
		if (err)
			pr_debug("limiter: tc on %s: %s\n", name, strerror(-err));
	}
	if (err) {
		pr_warn("limiter: cannot attach to %s (%s): %s\n", name,
			l->o.mode == LIMIT_MODE_XDP  ? "XDP"
			: l->o.mode == LIMIT_MODE_TC ? "tc"
						     : "XDP native, XDP generic and tc",
			strerror(-err));
		return err;
	}
	return record_iface(l, ifindex, name, *mode);
}

static int map_sources(struct limiter *l)
{
	int fd = bpf_map__fd(l->skel->maps.lim_src);
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	l->src_len = ((size_t)l->nbuckets * sizeof(struct bs_lim_bucket) + (size_t)page - 1) &
		     ~((size_t)page - 1);
	p = mmap(NULL, l->src_len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		pr_warn("limiter: cannot map the source table: %s\n", strerror(errno));
		return -errno;
	}
	l->src = p;
	return 0;
}

struct limiter *limit_start(const struct limit_opts *o)
{
	struct limiter *l = calloc(1, sizeof(*l));
	char line[512];
	size_t n = 0;
	int err;

	if (!l)
		return NULL;
	l->o = *o;
	l->nbuckets = o->clients / 2;
	if (limit_prepare_pins(o))
		goto fail;
	l->skel = open_skel(o);
	if (!l->skel)
		goto fail;
	err = limit_bpf__load(l->skel);
	if (err) {
		pr_warn("limiter: cannot load (%s). If libbpf said above that it could not reuse "
			"a pinned map, the state in %s is from another bunscope version: "
			"'bunscope limit detach' starts afresh\n",
			strerror(-err), BS_LIM_PIN_DIR);
		goto fail;
	}
	l->ncpus = libbpf_num_possible_cpus();
	if (write_config(l) || map_sources(l))
		goto fail;
	/* the ports a previous daemon left stay limited until the first refresh */
	for (__u32 w = 0; w < BS_LIM_PORT_WORDS; w++)
		bpf_map_lookup_elem(bpf_map__fd(l->skel->maps.lim_ports), &w, &l->ports[w]);
	for (int i = 0; i < o->nifaces; i++) {
		__u32 mode = BS_LIM_MODE_NONE;

		if (attach_iface(l, o->ifaces[i], &mode))
			goto fail;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %s", i ? ", " : "",
				      o->ifaces[i], mode_names[mode]);
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
	}
	pr_info("limiter: %s; new connections %s, packets %s per source (%s, %s clock); "
		"%d allow and %d deny CIDRs; state in %s\n",
		line, o->conn_rate ? "limited" : "not limited",
		o->pkt_rate ? "limited" : "not limited",
		o->algo == BS_LIM_SLIDING_WINDOW ? "sliding window" : "token bucket",
		l->coarse ? "coarse" : "precise", o->nallow, o->ndeny, BS_LIM_PIN_DIR);
	if (o->req_rate)
		pr_info("limiter: clients above %u HTTP requests/s (bursts of %u) are banned for "
			"%u s\n",
			o->req_rate, o->req_burst, o->ban_seconds);
	if (limit_shed_enabled(o)) {
		char why[256];
		size_t k = 0;

		why[0] = 0;
		if (o->shed_pending)
			k += (size_t)snprintf(why + k, sizeof(why) - k,
					      ", more than %u pending "
					      "requests (closes at %u)",
					      o->shed_pending, o->shed_low);
		if (o->shed_p99 > 0 && k < sizeof(why))
			k += (size_t)snprintf(why + k, sizeof(why) - k, ", p99 above %g s",
					      o->shed_p99);
		if (o->shed_5xx > 0 && k < sizeof(why))
			snprintf(why + k, sizeof(why) - k, ", 5xx above %g%%", o->shed_5xx * 100);
		pr_info("limiter: new connections shed on%s; half-open after %g s lets %u%% in\n",
			why, o->shed_open, o->shed_probe_pct);
	}
	return l;
fail:
	limit_close(l);
	return NULL;
}

int limit_set_ports(struct limiter *l, const __u16 *ports, int n)
{
	int fd = bpf_map__fd(l->skel->maps.lim_ports);
	__u64 want[BS_LIM_PORT_WORDS] = {};

	for (int i = 0; i < n; i++)
		want[ports[i] / 64] |= 1ULL << (ports[i] % 64);
	/* a word is written whole: a port kept has no gap */
	for (__u32 w = 0; w < BS_LIM_PORT_WORDS; w++) {
		if (want[w] == l->ports[w])
			continue;
		if (bpf_map_update_elem(fd, &w, &want[w], BPF_ANY)) {
			pr_warn("limiter: cannot limit ports %u..%u: %s\n", w * 64, w * 64 + 63,
				strerror(errno));
			continue;
		}
		l->ports[w] = want[w];
	}
	return 0;
}

int limit_bind_observer(struct limiter *l, int stats_fd)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(l->skel->maps.lim_shed_src), &zero, &stats_fd,
				BPF_ANY)) {
		pr_warn("limiter: cannot give the breaker the observer's counters: %s\n",
			strerror(errno));
		return -errno;
	}
	return 0;
}

/* The bans in force at now (until > now) of the lim_bans map fd, into a new
 * array *out (free it); their number, or -ENOMEM. */
static int read_bans(int fd, __u64 now, struct ban **out)
{
	struct ban *bans = NULL, *b;
	struct bs_lim_key k, nk;
	int n = 0, cap = 0;
	void *prev = NULL;
	__u64 until;

	while (!bpf_map_get_next_key(fd, prev, &nk)) {
		k = nk;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &until) || until <= now)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			b = realloc(bans, (size_t)cap * sizeof(*b));
			if (!b) {
				free(bans);
				return -ENOMEM;
			}
			bans = b;
		}
		bans[n].key = k;
		bans[n].until = until;
		n++;
	}
	*out = bans;
	return n;
}

/* The bans in force now, into l->bans; the newly made ones logged. */
static void scan_bans(struct limiter *l, __u64 now, bool log_new)
{
	__u64 next = now + 10 * BS_LIM_NSEC;
	struct ban *cur;
	int n = read_bans(bpf_map__fd(l->skel->maps.lim_bans), now, &cur);

	if (n < 0)
		return; /* the old list stands */
	for (int i = 0; i < n; i++) {
		bool known = false;
		char a[64];

		if (cur[i].until < next)
			next = cur[i].until;
		for (int j = 0; log_new && j < l->nbans && !known; j++)
			known = !memcmp(&l->bans[j], &cur[i], sizeof(cur[i]));
		if (!log_new || known)
			continue;
		limit_format_key(&cur[i].key, l->o.v6_prefix, a, sizeof(a));
		pr_info("limiter: banned %s for %llu s (HTTP requests above %u/s, bursts of %u)\n",
			a,
			(unsigned long long)((cur[i].until - now + BS_LIM_NSEC / 2) / BS_LIM_NSEC),
			l->o.req_rate, l->o.req_burst);
	}
	free(l->bans);
	l->bans = cur;
	l->nbans = n;
	l->bans_next_scan = next;
}

/* The counters of lim_stats (fd), summed over the CPUs, into out (zeros
 * when they cannot be read). */
static void read_counters(int fd, __u64 out[BS_LIM_NCOUNTERS])
{
	int ncpu = libbpf_num_possible_cpus();
	struct bs_lim_stats *v;
	__u32 zero = 0;

	memset(out, 0, BS_LIM_NCOUNTERS * sizeof(*out));
	if (ncpu <= 0 || !(v = calloc((size_t)ncpu, sizeof(*v))))
		return;
	if (!bpf_map_lookup_elem(fd, &zero, v))
		for (int i = 0; i < ncpu; i++)
			for (int c = 0; c < BS_LIM_NCOUNTERS; c++)
				out[c] += v[i].c[c];
	free(v);
}

void limit_tick(struct limiter *l, const __u32 *idx, int nidx, const struct shed_eval *ev)
{
	struct bs_lim_shed_ctl ctl = {};
	__u64 now = mono_ns(), made, c[BS_LIM_NCOUNTERS];
	__u32 zero = 0;

	if (limit_shed_enabled(&l->o)) {
		ctl.ncpus = l->ncpus > 0 ? (__u32)l->ncpus : 1;
		for (int i = 0; i < nidx && i < BS_SHED_IDX; i++)
			ctl.idx[ctl.nidx++] = idx[i];
		if (ev) {
			if (ev->trip != l->tripped)
				pr_info("limiter: %s (last %g s: %llu requests, p99 %.3f s, %.1f%% "
					"5xx)\n",
					ev->trip ? "thresholds exceeded, new connections "
						   "are shed"
						 : "thresholds no longer exceeded",
					l->o.shed_window, (unsigned long long)ev->requests, ev->p99,
					ev->ratio_5xx * 100);
			l->tripped = ev->trip;
			ctl.ext_trip = ev->trip;
		}
		ctl.heartbeat_ns = now;
		if (bpf_map_update_elem(bpf_map__fd(l->skel->maps.lim_shed_ctl), &zero, &ctl,
					BPF_ANY))
			pr_debug("limiter: breaker heartbeat: %s\n", strerror(errno));
	}
	read_counters(bpf_map__fd(l->skel->maps.lim_stats), c);
	made = c[BS_LIM_BANS_MADE];
	if (made != l->bans_made_seen || now >= l->bans_next_scan) {
		scan_bans(l, now, made != l->bans_made_seen);
		l->bans_made_seen = made;
	}
}

static bool read_breaker(struct limiter *l, struct bs_lim_shed *b)
{
	__u32 zero = 0;

	if (!limit_shed_enabled(&l->o) ||
	    bpf_map_lookup_elem(bpf_map__fd(l->skel->maps.lim_shed), &zero, b) ||
	    b->state >= BS_SHED_NSTATES)
		return false;
	return true;
}

bool limit_breaker(struct limiter *l, const char **state, long long *pending)
{
	struct bs_lim_shed b;

	if (!l || !read_breaker(l, &b))
		return false;
	*state = shed_names[b.state];
	*pending = b.pending;
	return true;
}

static __u64 tracked(const struct bs_lim_bucket *src, __u32 nbuckets, __u64 idle_ns)
{
	__u32 now = lim_tick(mono_ns()), idle = lim_tick(idle_ns);
	__u64 n = 0;

	for (__u32 i = 0; i < nbuckets; i++)
		for (int k = 0; k < 2; k++)
			n += lim_age(&src[i].s[k], now) < idle;
	return n;
}

void limit_write_metrics(struct limiter *l, struct sbuf *sb)
{
	static const struct {
		int counter;
		const char *action, *reason;
	} rows[] = {
		{ BS_LIM_PASS, "pass", "within_limits" },  { BS_LIM_PASS_ALLOW, "pass", "allow" },
		{ BS_LIM_DROP_DENY, "drop", "deny" },	   { BS_LIM_DROP_BAN, "drop", "ban" },
		{ BS_LIM_DROP_CONN, "drop", "conn_rate" }, { BS_LIM_DROP_PKT, "drop", "pkt_rate" },
		{ BS_LIM_DROP_SHED, "drop", "shed" },
	};
	__u64 c[BS_LIM_NCOUNTERS];
	int fd = bpf_map__fd(l->skel->maps.lim_ifaces);
	struct bs_lim_iface e;

	read_counters(bpf_map__fd(l->skel->maps.lim_stats), c);
	expo_header(sb, "bunscope_limit_packets_total", "counter",
		    "TCP packets to the limited ports by the limiter's decision, since the "
		    "limiter's state was created (it survives daemon restarts).");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct expo_label lb[] = { { "action", rows[i].action },
					   { "reason", rows[i].reason } };

		expo_sample_u64(sb, "bunscope_limit_packets_total", lb, 2, c[rows[i].counter]);
	}
	expo_scalar(sb, "bunscope_limit_other_packets_total", "counter",
		    "Packets the limiter let through untouched (not TCP to a limited port).",
		    c[BS_LIM_OTHER]);
	expo_scalar(sb, "bunscope_limit_tracked_clients", "gauge",
		    "Sources with rate state in use (seen within the idle time).",
		    tracked(l->src, l->nbuckets, l->idle_ns));
	expo_scalar(sb, "bunscope_limit_client_slots", "gauge",
		    "Capacity of the source table (--limit-clients); its memory is fixed.",
		    (__u64)l->nbuckets * 2);
	expo_scalar(sb, "bunscope_limit_sources_new_total", "counter",
		    "Sources that took a free or idle slot.", c[BS_LIM_SRC_NEW]);
	expo_scalar(sb, "bunscope_limit_evictions_total", "counter",
		    "Sources that took the slot of another source still in use (table too "
		    "small, or a flood of new addresses).",
		    c[BS_LIM_SRC_EVICT]);
	expo_scalar(sb, "bunscope_limit_bans_total", "counter",
		    "Clients banned for their HTTP request rate (--limit-req).",
		    c[BS_LIM_BANS_MADE]);
	{
		__u64 now = mono_ns(), active = 0;

		for (int i = 0; i < l->nbans; i++)
			active += l->bans[i].until > now;
		expo_scalar(sb, "bunscope_limit_active_bans", "gauge",
			    "Sources banned now (as of the last refresh).", active);
	}
	{
		struct bs_lim_shed b;

		if (read_breaker(l, &b)) {
			expo_header(sb, "bunscope_limit_breaker_state", "gauge",
				    "The load-shedding breaker: 1 for its current state.");
			for (__u32 i = 0; i < BS_SHED_NSTATES; i++) {
				struct expo_label lb[] = { { "state", shed_names[i] } };

				expo_sample_u64(sb, "bunscope_limit_breaker_state", lb, 1,
						b.state == i);
			}
			expo_scalar(sb, "bunscope_limit_breaker_opens_total", "counter",
				    "Times the breaker opened.", c[BS_LIM_SHED_OPENS]);
			expo_scalar(sb, "bunscope_limit_breaker_pending_requests", "gauge",
				    "Pending requests the breaker last read in the kernel.",
				    b.pending > 0 ? (__u64)b.pending : 0);
		}
	}
	expo_header(sb, "bunscope_limit_attached", "gauge",
		    "Interfaces the limiter is attached to, and how.");
	for (__u32 i = 0; i < BS_LIM_MAX_IFACES; i++) {
		if (bpf_map_lookup_elem(fd, &i, &e) || e.mode == BS_LIM_MODE_NONE ||
		    e.mode > BS_LIM_MODE_TC)
			continue;
		e.name[sizeof(e.name) - 1] = 0;
		{
			struct expo_label lb[] = { { "iface", e.name },
						   { "mode", mode_labels[e.mode] } };

			expo_sample_u64(sb, "bunscope_limit_attached", lb, 2, 1);
		}
	}
}

static void release_pins(void)
{
	if (pin_lock_fd >= 0)
		close(pin_lock_fd); /* another daemon may take the limiter now */
	pin_lock_fd = -1;
}

void limit_close(struct limiter *l)
{
	if (!l) {
		release_pins();
		return;
	}
	if (l->skel && limit_shed_enabled(&l->o)) {
		/* no daemon, no breaker: let everything in now, not in 3 s */
		struct bs_lim_shed_ctl ctl = {};
		__u32 zero = 0;

		bpf_map_update_elem(bpf_map__fd(l->skel->maps.lim_shed_ctl), &zero, &ctl, BPF_ANY);
	}
	if (l->src)
		munmap((void *)l->src, l->src_len);
	free(l->bans);
	limit_bpf__destroy(l->skel); /* links and filters stay: they are pinned */
	free(l);
	release_pins();
}

/* ---- bunscope limit status|detach ------------------------------------------------ */

static int pinned(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", BS_LIM_PIN_DIR, name);
	return bpf_obj_get(path);
}

static int limit_status(void)
{
	int cfd = pinned("lim_cfg"), sfd = pinned("lim_stats"), ifd = pinned("lim_ifaces");
	int bfd = pinned("lim_bans"), pfd = pinned("lim_ports");
	struct bs_lim_cfg c = {};
	struct bs_lim_iface e;
	__u64 cnt[BS_LIM_NCOUNTERS], now = mono_ns();
	__u32 zero = 0;
	int nbans = 0, rc = 0;

	if (cfd < 0 || sfd < 0 || ifd < 0) {
		printf("limiter: not set up (nothing pinned in %s)\n", BS_LIM_PIN_DIR);
		rc = 1;
		goto out;
	}
	bpf_map_lookup_elem(cfd, &zero, &c);
	printf("limiter state in %s\n", BS_LIM_PIN_DIR);
	printf("  attached:");
	{
		int any = 0;

		for (__u32 i = 0; i < BS_LIM_MAX_IFACES; i++) {
			if (bpf_map_lookup_elem(ifd, &i, &e) || e.mode == BS_LIM_MODE_NONE ||
			    e.mode > BS_LIM_MODE_TC)
				continue;
			e.name[sizeof(e.name) - 1] = 0;
			printf("%s %s (%s)", any++ ? "," : "", e.name, mode_names[e.mode]);
		}
		printf("%s\n", any ? "" : " nowhere");
	}
	printf("  ports:");
	for (__u32 w = 0; pfd >= 0 && w < BS_LIM_PORT_WORDS; w++) {
		__u64 bits;

		if (bpf_map_lookup_elem(pfd, &w, &bits))
			break;
		for (__u32 b = 0; b < 64; b++)
			if (bits >> b & 1)
				printf(" %u", w * 64 + b);
	}
	printf("\n");
	if (c.conn.interval)
		printf("  new connections: %u/s per source, bursts of %u\n", c.conn.rate,
		       c.conn.burst);
	if (c.pkt.interval)
		printf("  packets: %u/s per source, bursts of %u\n", c.pkt.rate, c.pkt.burst);
	printf("  algorithm: %s; source table: %u slots; clock: %s\n",
	       c.algo == BS_LIM_SLIDING_WINDOW ? "sliding window" : "token bucket",
	       (c.slots_mask + 1) * 2, c.coarse ? "coarse" : "precise");
	read_counters(sfd, cnt);
	printf("  packets passed: %llu within limits, %llu allow-listed; untouched: %llu\n",
	       (unsigned long long)cnt[BS_LIM_PASS], (unsigned long long)cnt[BS_LIM_PASS_ALLOW],
	       (unsigned long long)cnt[BS_LIM_OTHER]);
	printf("  packets dropped: %llu deny, %llu ban, %llu connection rate, %llu packet rate, "
	       "%llu shed\n",
	       (unsigned long long)cnt[BS_LIM_DROP_DENY], (unsigned long long)cnt[BS_LIM_DROP_BAN],
	       (unsigned long long)cnt[BS_LIM_DROP_CONN], (unsigned long long)cnt[BS_LIM_DROP_PKT],
	       (unsigned long long)cnt[BS_LIM_DROP_SHED]);
	printf("  sources: %llu new, %llu evictions\n", (unsigned long long)cnt[BS_LIM_SRC_NEW],
	       (unsigned long long)cnt[BS_LIM_SRC_EVICT]);
	if (bfd >= 0) {
		struct ban *bans;

		nbans = read_bans(bfd, now, &bans);
		if (nbans >= 0)
			free(bans);
	}
	printf("  active bans: %d (%llu made for request rate)\n", nbans < 0 ? 0 : nbans,
	       (unsigned long long)cnt[BS_LIM_BANS_MADE]);
	if (c.shed) {
		int hfd = pinned("lim_shed"), cfd2 = pinned("lim_shed_ctl");
		struct bs_lim_shed b = {};
		struct bs_lim_shed_ctl ctl = {};

		if (hfd >= 0)
			bpf_map_lookup_elem(hfd, &zero, &b);
		if (cfd2 >= 0)
			bpf_map_lookup_elem(cfd2, &zero, &ctl);
		printf("  breaker: %s, %lld pending when last read; opened %llu times%s\n",
		       b.state < BS_SHED_NSTATES ? shed_names[b.state] : "?", (long long)b.pending,
		       (unsigned long long)cnt[BS_LIM_SHED_OPENS],
		       !ctl.heartbeat_ns || now - ctl.heartbeat_ns > BS_SHED_STALE_NS
			       ? " (no daemon: new connections pass)"
			       : "");
		if (hfd >= 0)
			close(hfd);
		if (cfd2 >= 0)
			close(cfd2);
	}
out : {
	int fds[] = { cfd, sfd, ifd, bfd, pfd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}
	return rc;
}

static int limit_detach(void)
{
	static const char *const maps[] = { "lim_cfg",	   "lim_ports",	   "lim_src",
					    "lim_stats",   "lim_allow4",   "lim_deny4",
					    "lim_allow6",  "lim_deny6",	   "lim_bans",
					    "lim_ifaces",  "lim_shed_ctl", "lim_shed",
					    "lim_shed_src" };
	int ifd, rc = 0, lock, holder;
	struct bs_lim_iface e;
	char path[128];

	if (access(BS_LIM_PIN_DIR, F_OK)) {
		printf("limiter: nothing to detach (%s does not exist)\n", BS_LIM_PIN_DIR);
		return 0;
	}
	/* a running daemon would go on writing to maps no program reads, and
	 * a second one could then start beside it: it has to stop first (its
	 * enforcement stays attached when it does) */
	lock = lock_pins(&holder);
	if (lock == -EWOULDBLOCK) {
		if (holder)
			pr_warn("limit detach: bunscope (pid %d) runs the limiter; stop it first "
				"(kill %d; the enforcement stays attached), then detach\n",
				holder, holder);
		else
			pr_warn("limit detach: a running bunscope holds %s; stop it first, then "
				"detach\n",
				BS_LIM_PIN_DIR);
		return 1;
	}
	if (lock < 0 && lock != -ENOENT) {
		pr_warn("limit detach: cannot lock %s: %s\n", BS_LIM_PIN_DIR, strerror(-lock));
		return 1;
	}
	ifd = pinned("lim_ifaces");
	for (__u32 i = 0; ifd >= 0 && i < BS_LIM_MAX_IFACES; i++) {
		if (bpf_map_lookup_elem(ifd, &i, &e) || e.mode == BS_LIM_MODE_NONE)
			continue;
		e.name[sizeof(e.name) - 1] = 0;
		if (e.mode == BS_LIM_MODE_TC) {
			LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)e.ifindex,
				    .attach_point = BPF_TC_INGRESS);
			LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIO);
			int err = bpf_tc_detach(&hook, &opts);

			if (err && err != -ENOENT && err != -ENODEV) {
				pr_warn("limit detach: tc filter on %s: %s\n", e.name,
					strerror(-err));
				rc = 1;
			}
		} else {
			int fd;

			link_path(path, sizeof(path), e.name);
			fd = bpf_obj_get(path);
			if (fd >= 0) {
				if (bpf_link_detach(fd))
					pr_debug("limit detach: link of %s: %s\n", e.name,
						 strerror(errno));
				close(fd);
			}
			if (unlink(path) && errno != ENOENT) {
				pr_warn("limit detach: %s: %s\n", path, strerror(errno));
				rc = 1;
			}
		}
		printf("detached from %s (%s)\n", e.name,
		       mode_names[e.mode <= BS_LIM_MODE_TC ? e.mode : 0]);
	}
	if (ifd >= 0)
		close(ifd);
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", BS_LIM_PIN_DIR, maps[i]);
		if (unlink(path) && errno != ENOENT) {
			pr_warn("limit detach: %s: %s\n", path, strerror(errno));
			rc = 1;
		}
	}
	if (rmdir(BS_LIM_PIN_DIR) && errno != ENOENT) {
		pr_warn("limit detach: %s: %s (something else is pinned there)\n", BS_LIM_PIN_DIR,
			strerror(errno));
		rc = 1;
	}
	if (lock >= 0)
		close(lock);
	if (!rc)
		printf("limiter removed (%s deleted)\n", BS_LIM_PIN_DIR);
	return rc;
}

static __u32 pinned_v6_prefix(void)
{
	int fd = pinned("lim_cfg");
	struct bs_lim_cfg c = {};
	__u32 zero = 0;

	if (fd >= 0) {
		bpf_map_lookup_elem(fd, &zero, &c);
		close(fd);
	}
	return c.v6_prefix ? c.v6_prefix : 64;
}

static int limit_bans(void)
{
	int fd = pinned("lim_bans"), n;
	__u32 prefix = pinned_v6_prefix();
	__u64 now = mono_ns();
	struct ban *bans;

	if (fd < 0) {
		printf("limiter: not set up (nothing pinned in %s)\n", BS_LIM_PIN_DIR);
		return 1;
	}
	n = read_bans(fd, now, &bans);
	close(fd);
	if (n < 0) {
		pr_warn("limit bans: %s\n", strerror(-n));
		return 1;
	}
	if (!n)
		printf("no active bans\n");
	for (int i = 0; i < n; i++) {
		char a[64];

		if (!i)
			printf("%-44s %s\n", "SOURCE", "SECONDS LEFT");
		limit_format_key(&bans[i].key, prefix, a, sizeof(a));
		printf("%-44s %.1f\n", a, (double)(bans[i].until - now) / 1e9);
	}
	free(bans);
	return 0;
}

/* bans are only looked up once the configuration's bit says there may be some */
static int set_bans_bit(void)
{
	int fd = pinned("lim_cfg");
	struct bs_lim_cfg c;
	__u32 zero = 0;
	int err = 0;

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(fd, &zero, &c))
		err = -errno;
	else if (!(c.lists & BS_LIM_LIST_BANS)) {
		c.lists |= BS_LIM_LIST_BANS;
		if (bpf_map_update_elem(fd, &zero, &c, BPF_ANY))
			err = -errno;
	}
	close(fd);
	return err;
}

static int limit_ban(int argc, char **argv)
{
	struct limit_cidr cidr;
	struct bs_lim_key k;
	unsigned long secs = 60;
	__u64 until;
	char *end, a[64];
	int fd, rc = 0;

	if (argc < 1 || argc > 2 || limit_parse_cidr(argv[0], &cidr) ||
	    cidr.prefix != (cidr.v6 ? 128 : 32)) {
		pr_warn("usage: bunscope limit ban ADDRESS [SECONDS] (an IPv4 or IPv6 address; "
			"IPv6 is banned per its --limit-v6-prefix network)\n");
		return 2;
	}
	if (argc == 2) {
		errno = 0;
		secs = strtoul(argv[1], &end, 10);
		if (errno || *end || !secs || secs > 365UL * 86400) {
			pr_warn("limit ban: SECONDS is 1 .. 31536000, got '%s'\n", argv[1]);
			return 2;
		}
	}
	fd = pinned("lim_bans");
	if (fd < 0) {
		printf("limiter: not set up (nothing pinned in %s)\n", BS_LIM_PIN_DIR);
		return 1;
	}
	limit_cidr_key(&cidr, pinned_v6_prefix(), &k);
	until = mono_ns() + (__u64)secs * BS_LIM_NSEC;
	if (bpf_map_update_elem(fd, &k, &until, BPF_ANY) || set_bans_bit()) {
		pr_warn("limit ban: %s\n", strerror(errno));
		rc = 1;
	} else {
		limit_format_key(&k, pinned_v6_prefix(), a, sizeof(a));
		printf("banned %s for %lu s\n", a, secs);
	}
	close(fd);
	return rc;
}

static int limit_unban(int argc, char **argv)
{
	struct limit_cidr cidr;
	struct bs_lim_key want = {};
	__u32 prefix = pinned_v6_prefix();
	struct ban *bans;
	int fd, n, lifted = 0, all, single;

	all = argc == 1 && !strcmp(argv[0], "all");
	if (argc != 1 || (!all && limit_parse_cidr(argv[0], &cidr))) {
		pr_warn("usage: bunscope limit unban ADDRESS|CIDR|all\n");
		return 2;
	}
	fd = pinned("lim_bans");
	if (fd < 0) {
		printf("limiter: not set up (nothing pinned in %s)\n", BS_LIM_PIN_DIR);
		return 1;
	}
	n = read_bans(fd, mono_ns(), &bans);
	if (n < 0) {
		pr_warn("limit unban: %s\n", strerror(-n));
		close(fd);
		return 1;
	}
	/* an address: its source key; a network: every key inside it */
	single = !all && cidr.prefix == (cidr.v6 ? 128 : 32);
	if (single)
		limit_cidr_key(&cidr, prefix, &want);
	for (int i = 0; i < n; i++) {
		const struct bs_lim_key *k = &bans[i].key;
		char a[64];

		if (!all && (single ? memcmp(&want, k, sizeof(*k)) : !limit_key_in_cidr(k, &cidr)))
			continue;
		bpf_map_delete_elem(fd, k);
		limit_format_key(k, prefix, a, sizeof(a));
		printf("unbanned %s\n", a);
		lifted++;
	}
	if (!lifted)
		printf("no ban matches %s\n", argv[0]);
	free(bans);
	close(fd);
	return 0;
}

int limit_cli(int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		printf("Usage: bunscope limit status    what the pinned limiter does, without "
		       "the daemon\n"
		       "       bunscope limit bans      the sources banned now, and for how long\n"
		       "       bunscope limit ban ADDRESS [SECONDS]   ban a source (default 60 s)\n"
		       "       bunscope limit unban ADDRESS|CIDR|all  lift bans\n"
		       "       bunscope limit detach    remove the limiter: programs, links, "
		       "filters, state\n");
		return argc < 1 ? 2 : 0;
	}
	if (!loader_bpffs_mounted()) {
		printf("limiter: bpffs is not mounted on /sys/fs/bpf, so nothing is pinned\n");
		return !strcmp(argv[0], "status") ? 1 : 0;
	}
	if (!strcmp(argv[0], "status"))
		return limit_status();
	if (!strcmp(argv[0], "detach"))
		return limit_detach();
	if (!strcmp(argv[0], "bans"))
		return limit_bans();
	if (!strcmp(argv[0], "ban"))
		return limit_ban(argc - 1, argv + 1);
	if (!strcmp(argv[0], "unban"))
		return limit_unban(argc - 1, argv + 1);
	pr_warn("limit: unknown command '%s' (status, bans, ban, unban or detach)\n", argv[0]);
	return 2;
}
