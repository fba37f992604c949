// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Finding the processes to observe, through /proc:
 *   --pid PID    that process, for as long as it lives;
 *   --name NAME  every process whose comm, executable or argv[0] base name is
 *                NAME (re-attached when it restarts);
 *   --port PORT  the process(es) listening on TCP PORT (host network
 *                namespace), likewise re-attached.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "log.h"
#include "targets.h"

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return (int)n;
}

/* Does the process have threads besides its first?  A main thread that left
 * with pthread_exit shows as a zombie while the others run on. */
static bool other_threads(__u32 pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%u/task", pid);
	d = opendir(path);
	if (!d)
		return false;
	while (n < 2 && (de = readdir(d)))
		n += isdigit((unsigned char)de->d_name[0]) != 0;
	closedir(d);
	return n > 1;
}

int proc_stat_fields(__u32 pid, char comm[16], const int *fields, unsigned long long *vals, int n)
{
	char path[64], buf[1024], *p, *open_paren;
	int len, field, i = 0;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	len = read_file(path, buf, sizeof(buf));
	if (len < 0)
		return len;
	/* comm may contain anything, including ") ": use the last ')' */
	open_paren = strchr(buf, '(');
	p = strrchr(buf, ')');
	if (!open_paren || !p || p < open_paren)
		return -EINVAL;
	if (comm) {
		size_t clen = (size_t)(p - open_paren - 1);

		if (clen > 15)
			clen = 15;
		memcpy(comm, open_paren + 1, clen);
		comm[clen] = 0;
	}
	/* p points at ')', field 3 (state) follows.  A zombie has released its
	 * memory, files and sockets: for us it is gone, whether or not its
	 * parent has reaped it yet (a SIGKILLed target may stay a zombie for
	 * as long as its parent does not wait) */
	if (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X') && !other_threads(pid))
		return -ESRCH;
	/* fields are in increasing order */
	for (field = 2; *p && i < n; p++) {
		if (*p != ' ')
			continue;
		if (++field == fields[i])
			vals[i++] = strtoull(p + 1, NULL, 10);
	}
	return i == n ? 0 : -EINVAL;
}

int proc_status_kb(__u32 pid, const char *const *keys, unsigned long long *vals, int n)
{
	char path[64], buf[4096];
	int len;

	snprintf(path, sizeof(path), "/proc/%u/status", pid);
	len = read_file(path, buf, sizeof(buf));
	if (len < 0)
		return len;
	for (int i = 0; i < n; i++) {
		size_t klen = strlen(keys[i]);
		const char *line = buf;

		vals[i] = 0;
		/* read_file filled buf (len >= 0): the analyzer lets a failed
		 * open() leave errno 0, and so read_file return 0 untouched */
		/* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch) */
		for (; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
			if (!strncmp(line, keys[i], klen) && line[klen] == ':') {
				vals[i] = strtoull(line + klen + 1, NULL, 10);
				break;
			}
		}
	}
	return 0;
}

/* Start time (field 22 of /proc/PID/stat) and comm. */
static int proc_stat(__u32 pid, __u64 *start, char comm[16])
{
	static const int f[1] = { 22 };
	unsigned long long v;
	int err = proc_stat_fields(pid, comm, f, &v, start ? 1 : 0);

	if (!err && start)
		*start = v;
	return err;
}

int targets_probe_pid(__u32 pid, char comm[16])
{
	return proc_stat(pid, NULL, comm);
}

static const char *base(const char *s)
{
	const char *slash = strrchr(s, '/');

	return slash ? slash + 1 : s;
}

static bool name_matches(__u32 pid, const char *comm, const char *name)
{
	char path[64], buf[PATH_MAX];
	ssize_t n;

	if (!strcmp(comm, name))
		return true;
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		if (!strcmp(base(buf), name))
			return true;
	}
	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	if (read_file(path, buf, sizeof(buf)) > 0 && !strcmp(base(buf), name))
		return true;
	return false;
}

static int find_target(const struct target_set *ts, __u32 pid)
{
	for (int i = 0; i < ts->n; i++)
		if (ts->t[i].pid == pid)
			return i;
	return -1;
}

static bool is_gone(const struct target_set *ts, __u32 pid)
{
	for (int i = 0; i < ts->ngone; i++)
		if (ts->gone[i] == pid)
			return true;
	return false;
}

/* The first free slot, or -1. */
static int free_slot(const struct target_set *ts)
{
	for (int s = 0; s < BUNSCOPE_MAX_TARGETS; s++)
		if (!ts->slot_used[s])
			return s;
	return -1;
}

/* The next entry of the set, filled from /proc; NULL if pid is gone. */
static struct target *new_target(struct target_set *ts, __u32 pid)
{
	struct target *t = &ts->t[ts->n];

	memset(t, 0, sizeof(*t));
	if (proc_stat(pid, &t->start, t->comm))
		return NULL;
	t->pid = pid;
	return t;
}

/* Add the entry new_target() filled, in slot, and report it. */
static void commit_target(struct target_set *ts, struct target *t, int slot, target_cb cb,
			  void *ctx)
{
	t->slot = slot;
	ts->slot_used[slot] = true;
	ts->n++;
	cb(ctx, t, true);
}

static void add_target(struct target_set *ts, __u32 pid, const char *how, target_cb cb, void *ctx,
		       int *changes)
{
	struct target *t;
	int slot = free_slot(ts);

	if (pid == (__u32)getpid() || find_target(ts, pid) >= 0)
		return;
	if (ts->n >= BUNSCOPE_MAX_TARGETS || slot < 0) {
		if (!ts->warned_full)
			pr_warn("more than %d processes match; pid %u and later ones are not "
				"observed\n",
				BUNSCOPE_MAX_TARGETS, pid);
		ts->warned_full = true;
		return;
	}
	if (!(t = new_target(ts, pid)))
		return;
	snprintf(t->how, sizeof(t->how), "%s", how);
	(*changes)++;
	commit_target(ts, t, slot, cb, ctx);
}

int targets_reserve(struct target_set *ts)
{
	int slot = ts->n < BUNSCOPE_MAX_TARGETS ? free_slot(ts) : -1;

	if (slot >= 0)
		ts->slot_used[slot] = true;
	return slot;
}

void targets_release(struct target_set *ts, int slot)
{
	if (slot >= 0 && slot < BUNSCOPE_MAX_TARGETS)
		ts->slot_used[slot] = false;
}

/* The selector a process the kernel took matches, for the log and /health. */
static void adopted_how(struct target *t, const struct selectors *sel, bool at_exec)
{
	const char *when = at_exec ? "at exec" : "at listen";
	__u16 ports[BS_AUTO_MAX];
	int n;

	for (int i = 0; i < sel->nnames; i++) {
		if (name_matches(t->pid, t->comm, sel->names[i])) {
			snprintf(t->how, sizeof(t->how), "--name %.24s, %s", sel->names[i], when);
			return;
		}
	}
	n = targets_listening_ports(t->pid, ports, BS_AUTO_MAX);
	for (int i = 0; i < sel->nports; i++) {
		for (int j = 0; j < n; j++) {
			if (ports[j] == sel->ports[i]) {
				snprintf(t->how, sizeof(t->how), "--port %u, %s", sel->ports[i],
					 when);
				return;
			}
		}
	}
	snprintf(t->how, sizeof(t->how), "a selector, %s", when);
}

int targets_adopt(struct target_set *ts, const struct selectors *sel, __u32 pid, int slot,
		  bool at_exec, target_cb cb, void *ctx)
{
	struct target *t;

	/* neither can be: the kernel takes no observed process, and the slot
	 * was reserved with room in the set */
	if (find_target(ts, pid) >= 0 || ts->n >= BUNSCOPE_MAX_TARGETS) {
		targets_release(ts, slot);
		return -EEXIST;
	}
	if (!(t = new_target(ts, pid))) {
		targets_release(ts, slot);
		return -ESRCH;
	}
	t->adopted = true;
	adopted_how(t, sel, at_exec);
	commit_target(ts, t, slot, cb, ctx);
	return 0;
}

/* Inodes of the LISTEN sockets on the selected ports, from /proc/net/tcp{,6}. */
static int listening_inodes(const struct selectors *sel, unsigned long *inodes, __u16 *ports,
			    int max)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	int n = 0;

	for (size_t f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");
		char line[512];

		if (!fp)
			continue;
		if (!fgets(line, sizeof(line), fp)) { /* header */
			fclose(fp);
			continue;
		}
		while (fgets(line, sizeof(line), fp)) {
			unsigned int lport, st;
			unsigned long ino;
			char la[64];

			if (sscanf(line,
				   " %*d: %63[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*s %*s %*s "
				   "%*u %*u %lu",
				   la, &lport, &st, &ino) != 4)
				continue;
			if (st != 0x0A || !ino)
				continue;
			for (int i = 0; i < sel->nports; i++) {
				if (sel->ports[i] == lport && n < max) {
					ports[n] = (__u16)lport;
					inodes[n++] = ino;
				}
			}
		}
		fclose(fp);
	}
	return n;
}

/* Which process holds one of these socket inodes?  Walks /proc/PID/fd. */
static void owners_of(const unsigned long *inodes, const __u16 *ports, int ninodes,
		      struct target_set *ts, target_cb cb, void *ctx, int *changes)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;

	if (!proc)
		return;
	while ((de = readdir(proc))) {
		char path[64], link[64];
		DIR *fds;
		struct dirent *fe;
		__u32 pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (__u32)strtoul(de->d_name, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%u/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((fe = readdir(fds))) {
			char fpath[352];
			unsigned long ino;
			ssize_t n;

			if (fe->d_name[0] == '.')
				continue;
			snprintf(fpath, sizeof(fpath), "%s/%s", path, fe->d_name);
			n = readlink(fpath, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			if (sscanf(link, "socket:[%lu]", &ino) != 1)
				continue;
			for (int i = 0; i < ninodes; i++) {
				if (inodes[i] == ino) {
					char how[40];

					snprintf(how, sizeof(how), "--port %u", ports[i]);
					add_target(ts, pid, how, cb, ctx, changes);
				}
			}
		}
		closedir(fds);
	}
	closedir(proc);
}

int targets_refresh(struct target_set *ts, const struct selectors *sel, target_cb cb, void *ctx)
{
	int changes = 0;

	/* departures: gone, or the pid now belongs to another process */
	for (int i = 0; i < ts->n;) {
		struct target *t = &ts->t[i];
		__u64 start = 0;

		if (!proc_stat(t->pid, &start, NULL) && start == t->start) {
			i++;
			continue;
		}
		cb(ctx, t, false);
		ts->slot_used[t->slot] = false;
		ts->exits++;
		changes++;
		for (int k = 0; k < sel->npids; k++) {
			if (sel->pids[k] == t->pid && ts->ngone < SEL_MAX)
				ts->gone[ts->ngone++] = t->pid;
		}
		ts->t[i] = ts->t[--ts->n];
	}

	for (int i = 0; i < sel->npids; i++) {
		char how[40];

		if (is_gone(ts, sel->pids[i]))
			continue;
		snprintf(how, sizeof(how), "--pid %u", sel->pids[i]);
		add_target(ts, sel->pids[i], how, cb, ctx, &changes);
	}

	if (sel->nnames) {
		DIR *proc = opendir("/proc");
		struct dirent *de;

		while (proc && (de = readdir(proc))) {
			char comm[16];
			__u32 pid;

			if (!isdigit((unsigned char)de->d_name[0]))
				continue;
			pid = (__u32)strtoul(de->d_name, NULL, 10);
			if (proc_stat(pid, NULL, comm))
				continue;
			for (int i = 0; i < sel->nnames; i++) {
				if (name_matches(pid, comm, sel->names[i])) {
					char how[40];

					snprintf(how, sizeof(how), "--name %.30s", sel->names[i]);
					add_target(ts, pid, how, cb, ctx, &changes);
					break;
				}
			}
		}
		if (proc)
			closedir(proc);
	}

	if (sel->nports) {
		unsigned long inodes[64];
		__u16 ports[64];
		int n = listening_inodes(sel, inodes, ports, 64);
		__u64 sig = (__u64)n;

		for (int i = 0; i < n; i++)
			sig = sig * 1000003ULL ^ inodes[i];
		/* walking every fd of every process is costly: only when the
		 * listeners changed or a target left */
		if (sig != ts->listen_sig || changes) {
			ts->listen_sig = sig;
			owners_of(inodes, ports, n, ts, cb, ctx, &changes);
		}
	}
	return changes;
}

/* ---- connections open before we attached ------------------------------- */

struct sock_row {
	unsigned long ino;
	__u16 lport, rport;
	__u8 st;
	__u8 family;
	__u8 addr[16];
};

static int parse_hex_addr(const char *hex, __u8 *out, int words)
{
	for (int w = 0; w < words; w++) {
		char part[9];
		__u32 v;

		memcpy(part, hex + w * 8, 8);
		part[8] = 0;
		v = (__u32)strtoul(part, NULL, 16);
		/* /proc prints each 32-bit word in host order */
		memcpy(out + w * 4, &v, 4);
	}
	return 0;
}

static int read_sock_rows(__u32 pid, struct sock_row *rows, int max)
{
	int n = 0;

	for (int f = 0; f < 2; f++) {
		char path[64], line[512];
		FILE *fp;

		snprintf(path, sizeof(path), "/proc/%u/net/%s", pid, f ? "tcp6" : "tcp");
		fp = fopen(path, "re");
		if (!fp)
			continue;
		if (!fgets(line, sizeof(line), fp)) {
			fclose(fp);
			continue;
		}
		while (n < max && fgets(line, sizeof(line), fp)) {
			char la[64], ra[64];
			unsigned int lp, rp, st;
			unsigned long ino;

			if (sscanf(line,
				   " %*d: %63[0-9A-Fa-f]:%x %63[0-9A-Fa-f]:%x %x %*s %*s %*s "
				   "%*u %*u %lu",
				   la, &lp, ra, &rp, &st, &ino) != 6)
				continue;
			memset(&rows[n], 0, sizeof(rows[n]));
			rows[n].ino = ino;
			rows[n].lport = (__u16)lp;
			rows[n].rport = (__u16)rp;
			rows[n].st = (__u8)st;
			rows[n].family = f ? AF_INET6 : AF_INET;
			parse_hex_addr(ra, rows[n].addr, f ? 4 : 1);
			n++;
		}
		fclose(fp);
	}
	return n;
}

/* The socket inodes among pid's open fds (and the fd numbers); how many. */
static int pid_socket_inodes(__u32 pid, unsigned long *ino_out, int *fd_out, int max)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%u/fd", pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while ((de = readdir(dir)) && n < max) {
		char fpath[352], link[64];
		unsigned long ino;
		ssize_t len;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(fpath, sizeof(fpath), "%s/%s", path, de->d_name);
		len = readlink(fpath, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = 0;
		if (sscanf(link, "socket:[%lu]", &ino) != 1)
			continue;
		ino_out[n] = ino;
		fd_out[n++] = atoi(de->d_name);
	}
	closedir(dir);
	return n;
}

int targets_listening_ports(__u32 pid, __u16 *out, int max)
{
	enum { MAX_ROWS = 16384, MAX_FDS = 16384 };
	struct sock_row *rows = calloc(MAX_ROWS, sizeof(*rows));
	unsigned long *fd_ino = calloc(MAX_FDS, sizeof(*fd_ino));
	int *fd_num = calloc(MAX_FDS, sizeof(*fd_num));
	int nrows, nfds, n = 0;

	if (!rows || !fd_ino || !fd_num)
		goto out;
	nfds = pid_socket_inodes(pid, fd_ino, fd_num, MAX_FDS);
	nrows = read_sock_rows(pid, rows, MAX_ROWS);
	for (int i = 0; i < nrows && n < max; i++) {
		bool dup = false;

		if (rows[i].st != 0x0A) /* LISTEN */
			continue;
		for (int k = 0; k < n; k++)
			dup |= out[k] == rows[i].lport;
		for (int k = 0; k < nfds && !dup; k++) {
			if (fd_ino[k] == rows[i].ino) {
				out[n++] = rows[i].lport;
				break;
			}
		}
	}
out:
	free(rows);
	free(fd_ino);
	free(fd_num);
	return n;
}

int targets_established(__u32 pid, struct est_conn *out, int max)
{
	enum { MAX_ROWS = 16384, MAX_FDS = 16384 };
	struct sock_row *rows = calloc(MAX_ROWS, sizeof(*rows));
	unsigned long *fd_ino = calloc(MAX_FDS, sizeof(*fd_ino));
	int *fd_num = calloc(MAX_FDS, sizeof(*fd_num));
	int nrows, nfds = 0, n = 0;

	if (!rows || !fd_ino || !fd_num)
		goto out;
	nfds = pid_socket_inodes(pid, fd_ino, fd_num, MAX_FDS);
	nrows = read_sock_rows(pid, rows, MAX_ROWS);
	for (int i = 0; i < nrows && n < max; i++) {
		bool ours = false, listened = false;
		int fd = -1;

		if (rows[i].st != 0x01) /* ESTABLISHED */
			continue;
		for (int k = 0; k < nfds; k++) {
			if (fd_ino[k] == rows[i].ino) {
				ours = true;
				fd = fd_num[k];
				break;
			}
		}
		if (!ours)
			continue;
		/* accepted by the target: it listens on this local port */
		for (int j = 0; j < nrows && !listened; j++) {
			if (rows[j].st != 0x0A || rows[j].lport != rows[i].lport)
				continue;
			for (int k = 0; k < nfds; k++) {
				if (fd_ino[k] == rows[j].ino) {
					listened = true;
					break;
				}
			}
		}
		out[n].fd = fd;
		out[n].client = !listened;
		out[n].lport = rows[i].lport;
		out[n].rport = rows[i].rport;
		out[n].family = rows[i].family;
		memcpy(out[n].addr, rows[i].addr, 16);
		n++;
	}
out:
	free(rows);
	free(fd_ino);
	free(fd_num);
	return n;
}
