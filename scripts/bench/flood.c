// SPDX-License-Identifier: GPL-2.0
/*
 * flood: TCP SYN flood generator for bunscope's limiter tests and benchmark.
 *
 * Builds Ethernet + IPv4 (or IPv6) + TCP SYN frames with valid IP and TCP
 * checksums and sends them on one interface through AF_PACKET raw sockets,
 * qdisc bypassed, in sendmmsg batches.  The source is one fixed address or a
 * random address per packet drawn uniformly from a CIDR; source ports and
 * sequence numbers are random per packet.  Every run is bounded: by time
 * (-t, default 5 s, at most 600 s), optionally by a packet count (-c), and
 * by SIGINT/SIGTERM; -R caps the rate.  The tests run it in a network
 * namespace that reaches the server through a veth pair.  At the end it
 * prints one line: "sent=N seconds=S pps=P errors=E".
 *
 * -X sends without sockets or skbs: BPF_PROG_TEST_RUN in live-frame mode
 * runs xdpflood.bpf.c on the template, which varies each frame and
 * redirects it out of IFACE.  A veth hands such frames to its peer's XDP as
 * xdp_frames, as a NIC's driver would: the receiver's cost is then the
 * filter's, not the cost of an skb the sender built.  libc and libbpf.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xdpflood.skel.h"

#define PROG	      "flood"
#define MAX_SECONDS   600.0
#define MAX_THREADS   64
#define MAX_BATCH     1024 /* UIO_MAXIOV, sendmmsg's limit */
#define TCP_LEN	      24   /* 20-byte header + MSS option */
#define SLOT_SIZE     128  /* bytes per frame buffer */
#define SLOT_PAD      2	   /* so that the IP header is 4-byte aligned */
#define NSEC	      1000000000ULL
#define BACKOFF_NS    20000    /* after ENOBUFS/EAGAIN */
#define SLEEP_MAX_NS  50000000 /* longest sleep between stop checks */
#define XDP_CALL      65536    /* -X: frames per BPF_PROG_TEST_RUN call, unpaced */
#define XDP_MAX_BATCH 256      /* -X: the kernel's largest live-frame batch */

/* What every packet of the run shares, set up by main() before the threads. */
struct flood {
	int family;
	int ifindex;
	const char *ifname;
	const char *dst_arg;
	unsigned char dmac[ETH_ALEN], smac[ETH_ALEN];
	unsigned char dst[16], src[16]; /* network order */
	unsigned char hostmask[16];	/* random bits of the source (-r) */
	bool random_src;
	bool xdp; /* -X: live XDP frames instead of AF_PACKET */
	struct xdpflood_bpf *skel;
	uint16_t dport;
	uint64_t rate;	/* packets/s over all threads, 0: no cap */
	uint64_t count; /* UINT64_MAX: no count bound */
	double seconds;
	int threads;
	unsigned int batch;
	/* the frame at SLOT_PAD, with source, IP ID, port, sequence and checksums zero */
	unsigned char tmpl[SLOT_SIZE] __attribute__((aligned(16)));
	unsigned int frame_len;
	uint32_t ip_sum, tcp_sum; /* partial sums of the constant parts */
	uint64_t start_ns;
};

struct sender {
	pthread_t tid;
	int idx;
	int fd;
	int cpu;		 /* -1: not pinned */
	uint64_t quota;		 /* packets this thread sends at most */
	double rate;		 /* its share of -R, 0: no cap */
	unsigned int pace_batch; /* batch size while paced */
	uint64_t rng;
	uint64_t sent, errors;
	int err; /* errno of a fatal send error */
	unsigned char *slots;
	struct iovec *iov;
	struct mmsghdr *msgs;
	struct sockaddr_ll sll;
};

static struct flood fl;
static atomic_int stop_flag;
static pthread_barrier_t start_barrier;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " -i IFACE -d DST_IP -p DPORT [-6] [-s SRC_IP | -r SRC_CIDR]\n"
		"             [-R PPS] [-t SECONDS] [-c COUNT] [-m DST_MAC] [-S SRC_MAC]\n"
		"             [-T THREADS] [-b BATCH] [-X]\n"
		"\n"
		"Send TCP SYNs (valid checksums, MSS option) to DST_IP:DPORT out of IFACE\n"
		"through AF_PACKET sockets (qdisc bypassed, sendmmsg batches).  Source ports\n"
		"and sequence numbers are random per packet.  For bunscope's tests and bench.\n"
		"\n"
		"  -i IFACE      Ethernet interface to send on\n"
		"  -d DST_IP     destination address (IPv4, or IPv6 with -6)\n"
		"  -p DPORT      destination TCP port\n"
		"  -6            IPv6: -d, -s and -r take IPv6 addresses\n"
		"  -s SRC_IP     one fixed source address (default: IFACE's own address)\n"
		"  -r SRC_CIDR   a random source per packet, uniform in SRC_CIDR\n"
		"                (e.g. 10.0.0.0/8, or fd00::/16 with -6)\n"
		"  -R PPS        cap the total rate at PPS packets/s (default 0: no cap)\n"
		"  -t SECONDS    stop after SECONDS (default 5, at most 600)\n"
		"  -c COUNT      stop after COUNT packets sent\n"
		"  -m DST_MAC    destination MAC (default: DST_IP's entry in the kernel's\n"
		"                neighbour table for IFACE, resolved first if missing, for\n"
		"                IPv4 and IPv6 alike; DST_IP must be on-link, else pass -m)\n"
		"  -S SRC_MAC    source MAC (default: IFACE's own)\n"
		"  -T THREADS    sender threads, each with its own socket, pinned to a CPU\n"
		"                (default 1, at most %d)\n"
		"  -b BATCH      packets per sendmmsg call (default 64, at most %d;\n"
		"                with -X: frames per live-frame batch, at most 256)\n"
		"  -X            send with BPF_PROG_TEST_RUN's live XDP frames, redirected\n"
		"                out of IFACE (IPv4 only; Linux 5.18 or later); on a veth\n"
		"                the peer gets xdp_frames, not skbs.  Needs CAP_BPF and\n"
		"                CAP_NET_ADMIN, and XDP or GRO enabled on the peer\n"
		"  -h, --help    print this text\n"
		"\n"
		"Stops at the first of -t, -c, SIGINT and SIGTERM, then prints one line\n"
		"  sent=PACKETS seconds=ELAPSED pps=RATE errors=SEND_ERRORS\n"
		"where sent counts the packets the kernel took and errors the sends it\n"
		"refused (ENOBUFS or EAGAIN: the driver's queue was full; backed off and\n"
		"retried).  With -X, sent counts the frames redirected: a peer whose\n"
		"queue is full drops some of them unseen, so count on the receiver.\n"
		"Exit status 0 on success, 1 on runtime errors, 2 on usage errors.\n"
		"Needs CAP_NET_RAW.\n",
		MAX_THREADS, MAX_BATCH);
}

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry '" PROG " --help'.\n");
	va_end(ap);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / NSEC, .tv_nsec = ns % NSEC };

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static bool stopping(void)
{
	return atomic_load_explicit(&stop_flag, memory_order_relaxed);
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_flag, 1);
}

/* splitmix64: fast, and good enough to scatter ports and addresses */
static inline uint64_t rnd(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- argument parsing ---------------------------------------------------- */

static uint64_t parse_u64(const char *s, uint64_t min, uint64_t max, const char *what,
			  const char *range)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		usage_error("bad %s '%s' (%s)", what, s, range);
	return v;
}

static void parse_mac(const char *s, unsigned char *mac)
{
	int n = 0;

	if (sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%n", &mac[0], &mac[1], &mac[2], &mac[3],
		   &mac[4], &mac[5], &n) != 6 ||
	    s[n])
		usage_error("bad MAC address '%s' (want xx:xx:xx:xx:xx:xx)", s);
}

static void parse_addr(int family, const char *s, unsigned char *out)
{
	if (inet_pton(family, s, out) == 1)
		return;
	if (family == AF_INET)
		usage_error("'%s' is not an IPv4 address (use -6 for IPv6)", s);
	usage_error("'%s' is not an IPv6 address", s);
}

/* "ADDR/LEN": the network into fl.src, the random bits into fl.hostmask */
static void parse_cidr(int family, const char *s)
{
	unsigned int alen = family == AF_INET ? 4 : 16, i;
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	unsigned long plen;
	char *end;

	if (!slash || (size_t)(slash - s) >= sizeof(buf) - 1)
		usage_error("bad CIDR '%s' (want ADDR/PREFIXLEN)", s);
	memcpy(buf, s, slash - s);
	buf[slash - s] = 0;
	parse_addr(family, buf, fl.src);
	plen = strtoul(slash + 1, &end, 10);
	if (end == slash + 1 || *end || slash[1] == '-' || plen > alen * 8)
		usage_error("bad prefix length in '%s'", s);
	for (i = 0; i < alen; i++) {
		unsigned int bits = plen >= 8 * (i + 1) ? 8 : plen > 8 * i ? plen - 8 * i : 0;
		unsigned char netmask = bits ? 0xff << (8 - bits) : 0;

		fl.hostmask[i] = ~netmask;
		fl.src[i] &= netmask;
	}
}

static void parse_args(int argc, char **argv, const char **src_arg, const char **cidr_arg,
		       const char **dmac_arg, const char **smac_arg)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dst = NULL, *port = NULL;
	char *end;
	int c;

	fl.family = AF_INET;
	fl.seconds = 5;
	fl.count = UINT64_MAX;
	fl.threads = 1;
	fl.batch = 64;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:d:p:6s:r:R:t:c:m:S:T:b:Xh", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'i':
			fl.ifname = optarg;
			break;
		case 'd':
			dst = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case '6':
			fl.family = AF_INET6;
			break;
		case 's':
			*src_arg = optarg;
			break;
		case 'r':
			*cidr_arg = optarg;
			break;
		case 'm':
			*dmac_arg = optarg;
			break;
		case 'S':
			*smac_arg = optarg;
			break;
		case 'R':
			fl.rate =
				parse_u64(optarg, 0, 1000000000, "rate", "0..1000000000 packets/s");
			break;
		case 'c':
			fl.count = parse_u64(optarg, 1, UINT64_MAX - 1, "count", ">= 1");
			break;
		case 'T':
			fl.threads = parse_u64(optarg, 1, MAX_THREADS, "thread count", "1..64");
			break;
		case 'b':
			fl.batch = parse_u64(optarg, 1, MAX_BATCH, "batch", "1..1024");
			break;
		case 't':
			errno = 0;
			fl.seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(fl.seconds > 0) ||
			    fl.seconds > MAX_SECONDS)
				usage_error("bad duration '%s' (0 < SECONDS <= 600)", optarg);
			break;
		case 'X':
			fl.xdp = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error("option -%c needs an argument", optopt);
		default:
			if (optopt && optopt != 'h')
				usage_error("unknown option -%c", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!fl.ifname || !dst || !port)
		usage_error("%s", "-i IFACE, -d DST_IP and -p DPORT are required");
	if (*src_arg && *cidr_arg)
		usage_error("%s", "-s and -r exclude each other");
	if (fl.xdp && fl.family != AF_INET)
		usage_error("%s", "-X sends IPv4 only");
	if (fl.xdp && fl.batch > XDP_MAX_BATCH)
		usage_error("%s", "-X takes batches of at most 256 frames");
	parse_addr(fl.family, dst, fl.dst);
	fl.dst_arg = dst;
	fl.dport = parse_u64(port, 1, 65535, "port", "1..65535");
	if (*src_arg)
		parse_addr(fl.family, *src_arg, fl.src);
	if (*cidr_arg) {
		parse_cidr(fl.family, *cidr_arg);
		fl.random_src = true;
	}
	if (*dmac_arg)
		parse_mac(*dmac_arg, fl.dmac);
	if (*smac_arg)
		parse_mac(*smac_arg, fl.smac);
}

/* ---- the interface: index, MAC, address, the destination's neighbour ---- */

static void __attribute__((noreturn)) die_errno(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s %s: %s\n", what, arg, strerror(errno));
	exit(1);
}

/* IFACE must be Ethernet; its MAC is the default source MAC */
static void iface_mac(int fd, unsigned char *mac)
{
	struct ifreq ifr = {};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", fl.ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		die_errno("cannot read the MAC of", fl.ifname);
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
		fprintf(stderr, PROG ": %s is not an Ethernet interface\n", fl.ifname);
		exit(1);
	}
	if (mac)
		memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
}

/* IFACE's first address of the family; for IPv6 a global one if any */
static void iface_addr(unsigned char *out)
{
	struct ifaddrs *ifa, *it;
	bool found = false;

	if (getifaddrs(&ifa))
		die_errno("cannot list the addresses of", fl.ifname);
	for (it = ifa; it; it = it->ifa_next) {
		if (!it->ifa_addr || it->ifa_addr->sa_family != fl.family ||
		    strcmp(it->ifa_name, fl.ifname))
			continue;
		if (fl.family == AF_INET) {
			memcpy(out, &((struct sockaddr_in *)it->ifa_addr)->sin_addr, 4);
			found = true;
			break;
		} else {
			struct in6_addr *a = &((struct sockaddr_in6 *)it->ifa_addr)->sin6_addr;

			if (found && IN6_IS_ADDR_LINKLOCAL(a))
				continue;
			memcpy(out, a, 16);
			found = true;
			if (!IN6_IS_ADDR_LINKLOCAL(a))
				break;
		}
	}
	freeifaddrs(ifa);
	if (!found) {
		fprintf(stderr, PROG ": %s has no IPv%c address; pass -s or -r\n", fl.ifname,
			fl.family == AF_INET ? '4' : '6');
		exit(1);
	}
}

/* Is this RTM_NEWNEIGH the destination's on our interface, with a MAC? */
static bool neigh_match(const struct nlmsghdr *nh, unsigned char *mac)
{
	const struct ndmsg *ndm = NLMSG_DATA(nh);
	unsigned int alen = fl.family == AF_INET ? 4 : 16;
	size_t off = NLMSG_ALIGN(sizeof(*ndm)), len;
	const unsigned char *lladdr = NULL;
	bool dst_ok = false;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ndm)) || ndm->ndm_ifindex != fl.ifindex ||
	    ndm->ndm_family != fl.family || (ndm->ndm_state & (NUD_INCOMPLETE | NUD_FAILED)) ||
	    ndm->ndm_state == NUD_NONE)
		return false;
	len = nh->nlmsg_len - NLMSG_HDRLEN;
	while (off + sizeof(struct rtattr) <= len) {
		const struct rtattr *rta = (const void *)((const char *)ndm + off);

		if (rta->rta_len < sizeof(*rta) || off + rta->rta_len > len)
			break;
		if (rta->rta_type == NDA_DST && RTA_PAYLOAD(rta) == alen)
			dst_ok = !memcmp(RTA_DATA(rta), fl.dst, alen);
		else if (rta->rta_type == NDA_LLADDR && RTA_PAYLOAD(rta) == ETH_ALEN)
			lladdr = RTA_DATA(rta);
		off += RTA_ALIGN(rta->rta_len);
	}
	if (!dst_ok || !lladdr)
		return false;
	memcpy(mac, lladdr, ETH_ALEN);
	return true;
}

/* Dump the neighbour table over rtnetlink: 1 found, 0 not, -1 error. */
static int neigh_lookup(unsigned char *mac)
{
	struct {
		struct nlmsghdr nh;
		struct ndmsg ndm;
	} req = {
		.nh.nlmsg_len = sizeof(req),
		.nh.nlmsg_type = RTM_GETNEIGH,
		.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		.nh.nlmsg_seq = 1,
		.ndm.ndm_family = fl.family,
		.ndm.ndm_ifindex = fl.ifindex,
	};
	static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
	int fd, found = 0;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -1;
	if (send(fd, &req, sizeof(req), 0) < 0)
		goto fail;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		size_t off = 0;

		if (n < 0)
			goto fail;
		while (off + sizeof(struct nlmsghdr) <= (size_t)n) {
			const struct nlmsghdr *nh = (const void *)(buf + off);

			if (nh->nlmsg_len < sizeof(*nh) || nh->nlmsg_len > (size_t)n - off)
				break;
			if (nh->nlmsg_type == NLMSG_DONE)
				goto out;
			if (nh->nlmsg_type == NLMSG_ERROR) {
				errno = EPROTO;
				goto fail;
			}
			if (nh->nlmsg_type == RTM_NEWNEIGH && !found && neigh_match(nh, mac))
				found = 1;
			off += NLMSG_ALIGN(nh->nlmsg_len);
		}
	}
out:
	close(fd);
	return found;
fail:
	close(fd);
	return -1;
}

/* Make the kernel resolve DST_IP: one empty UDP datagram to its discard port. */
static void neigh_probe(void)
{
	struct sockaddr_storage ss = {};
	socklen_t sl;
	int fd;

	if (fl.family == AF_INET) {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(9);
		memcpy(&sin->sin_addr, fl.dst, 4);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(9);
		memcpy(&sin6->sin6_addr, fl.dst, 16);
		if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr))
			sin6->sin6_scope_id = fl.ifindex;
		sl = sizeof(*sin6);
	}
	fd = socket(fl.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, fl.ifname, strlen(fl.ifname));
	sendto(fd, "", 0, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
	close(fd);
}

static void resolve_dmac(void)
{
	int i, r;

	for (i = 0; i < 100; i++) { /* up to 1 s */
		r = neigh_lookup(fl.dmac);
		if (r < 0)
			die_errno("cannot read the neighbour table for", fl.ifname);
		if (r > 0)
			return;
		if (i == 0)
			neigh_probe();
		usleep(10000);
	}
	fprintf(stderr,
		PROG ": no neighbour entry for %s on %s (not on-link, or not "
		     "answering ARP/ND); pass -m DST_MAC\n",
		fl.dst_arg, fl.ifname);
	exit(1);
}

/* ---- frames -------------------------------------------------------------- */

/* one's complement sum of 16-bit words as they lie in memory */
static uint32_t csum_add(uint32_t sum, const void *p, size_t len)
{
	const unsigned char *b = p;
	uint16_t w;
	size_t i;

	for (i = 0; i + 1 < len; i += 2) {
		memcpy(&w, b + i, 2);
		sum += w;
	}
	if (len & 1) {
		w = 0;
		memcpy(&w, b + len - 1, 1);
		sum += w;
	}
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

static inline uint32_t words32(uint32_t v)
{
	return (v & 0xffff) + (v >> 16);
}

/*
 * The template frame: Ethernet, IP, TCP SYN with an MSS option, with the
 * fields that vary per packet (source address, IP ID, source port, sequence)
 * and the checksums zero; fl.ip_sum and fl.tcp_sum are the partial sums of
 * the rest, including the TCP pseudo-header without its source address.
 */
static void build_template(void)
{
	struct ether_header *eth = (void *)(fl.tmpl + SLOT_PAD);
	unsigned int ip_len = fl.family == AF_INET ? sizeof(struct iphdr) : sizeof(struct ip6_hdr);
	struct tcphdr *th = (void *)(fl.tmpl + SLOT_PAD + ETH_HLEN + ip_len);
	unsigned char *opt = (unsigned char *)(th + 1);
	uint16_t mss = fl.family == AF_INET ? 1460 : 1440;
	uint32_t sum;

	memcpy(eth->ether_dhost, fl.dmac, ETH_ALEN);
	memcpy(eth->ether_shost, fl.smac, ETH_ALEN);
	eth->ether_type = htons(fl.family == AF_INET ? ETHERTYPE_IP : ETHERTYPE_IPV6);

	th->th_dport = htons(fl.dport);
	th->th_off = TCP_LEN / 4;
	th->th_flags = TH_SYN;
	th->th_win = htons(64240);
	opt[0] = TCPOPT_MAXSEG;
	opt[1] = TCPOLEN_MAXSEG;
	opt[2] = mss >> 8;
	opt[3] = mss & 0xff;
	sum = csum_add(0, th, TCP_LEN);
	sum += htons(IPPROTO_TCP) + htons(TCP_LEN);

	if (fl.family == AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);

		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(sizeof(*ip) + TCP_LEN);
		ip->frag_off = htons(IP_DF);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		memcpy(&ip->daddr, fl.dst, 4);
		fl.ip_sum = csum_add(0, ip, sizeof(*ip));
		sum = csum_add(sum, fl.dst, 4);
	} else {
		struct ip6_hdr *ip6 = (void *)(eth + 1);

		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = htons(TCP_LEN);
		ip6->ip6_nxt = IPPROTO_TCP;
		ip6->ip6_hlim = 64;
		memcpy(&ip6->ip6_dst, fl.dst, 16);
		sum = csum_add(sum, fl.dst, 16);
	}
	fl.tcp_sum = sum;
	fl.frame_len = ETH_HLEN + ip_len + TCP_LEN;
}

/* the source of the next packet, as it lies in memory */
static void next_src(struct sender *s, unsigned char *src)
{
	uint64_t r[2];
	unsigned int i, alen = fl.family == AF_INET ? 4 : 16;

	if (!fl.random_src) {
		memcpy(src, fl.src, alen);
		return;
	}
	r[0] = rnd(&s->rng);
	r[1] = alen > 8 ? rnd(&s->rng) : 0;
	for (i = 0; i < alen; i++) {
		unsigned char b = ((const unsigned char *)r)[i];

		src[i] = fl.src[i] | (b & fl.hostmask[i]);
	}
}

static void fill_frame(struct sender *s, unsigned char *f)
{
	uint64_t r = rnd(&s->rng);
	uint16_t sport = htons(1024 + (r >> 32) % (65536 - 1024));
	uint32_t seq = r, sum = fl.tcp_sum;
	struct tcphdr *th;

	if (fl.family == AF_INET) {
		struct iphdr *ip = (void *)(f + ETH_HLEN);
		uint16_t id = r >> 48;

		next_src(s, (unsigned char *)&ip->saddr);
		ip->id = id;
		ip->check = csum_fold(fl.ip_sum + id + words32(ip->saddr));
		sum += words32(ip->saddr);
		th = (void *)(ip + 1);
	} else {
		struct ip6_hdr *ip6 = (void *)(f + ETH_HLEN);

		next_src(s, (unsigned char *)&ip6->ip6_src);
		sum = csum_add(sum, &ip6->ip6_src, 16);
		th = (void *)(ip6 + 1);
	}
	th->th_sport = sport;
	th->th_seq = seq;
	th->th_sum = csum_fold((uint64_t)sum + sport + words32(seq));
}

/* ---- senders ------------------------------------------------------------- */

static int open_socket(void)
{
	int fd, one = 1, sndbuf = 4 << 20;
	struct timeval tv = { .tv_usec = 100000 };

	/* protocol 0: a send-only socket, it is given no packets to read */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == EPERM || errno == EACCES) {
			fprintf(stderr, PROG ": needs CAP_NET_RAW (run as root)\n");
			exit(1);
		}
		die_errno("cannot open an AF_PACKET socket for", fl.ifname);
	}
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
		die_errno("cannot set PACKET_QDISC_BYPASS on a socket for", fl.ifname);
	/* room for a real NIC's TX ring of small frames; no sysctl needed */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	/* a send never blocks for long: the time bound holds */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static void sender_init(struct sender *s, int idx, const int *cpus, int ncpus)
{
	uint64_t seed;
	unsigned int i;

	s->idx = idx;
	s->fd = fl.xdp ? -1 : open_socket();
	s->cpu = ncpus ? cpus[idx % ncpus] : -1;
	s->quota = fl.count == UINT64_MAX
			   ? UINT64_MAX
			   : fl.count / fl.threads + ((uint64_t)idx < fl.count % fl.threads);
	s->rate = (double)fl.rate / fl.threads;
	s->pace_batch = fl.batch;
	if (fl.xdp) {
		/* BPF_PROG_TEST_RUN calls of about 10 ms while paced: each
		 * sets up a page pool */
		double per_call = s->rate / 100;

		s->pace_batch = per_call < 1 ? 1 : per_call > XDP_CALL ? XDP_CALL : per_call;
	} else if (fl.rate) {
		/* batches of about 1 ms while paced */
		double per_ms = s->rate / 1000;

		if (per_ms < s->pace_batch)
			s->pace_batch = per_ms < 1 ? 1 : (unsigned int)per_ms;
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = now_ns() ^ ((uint64_t)getpid() << 32);
	s->rng = seed ^ (0x9e3779b97f4a7c15ULL * (idx + 1));

	if (fl.xdp) /* no socket: one frame, on the sender's stack */
		return;
	s->sll.sll_family = AF_PACKET;
	s->sll.sll_ifindex = fl.ifindex;
	s->sll.sll_protocol = htons(fl.family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
	s->sll.sll_halen = ETH_ALEN;
	memcpy(s->sll.sll_addr, fl.dmac, ETH_ALEN);

	s->slots = aligned_alloc(64, (size_t)fl.batch * SLOT_SIZE);
	s->iov = calloc(fl.batch, sizeof(*s->iov));
	s->msgs = calloc(fl.batch, sizeof(*s->msgs));
	if (!s->slots || !s->iov || !s->msgs) {
		fprintf(stderr, PROG ": out of memory\n");
		exit(1);
	}
	for (i = 0; i < fl.batch; i++) {
		unsigned char *f = s->slots + (size_t)i * SLOT_SIZE + SLOT_PAD;

		memcpy(f, fl.tmpl + SLOT_PAD, fl.frame_len);
		s->iov[i].iov_base = f;
		s->iov[i].iov_len = fl.frame_len;
		s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
		s->msgs[i].msg_hdr.msg_iovlen = 1;
		s->msgs[i].msg_hdr.msg_name = &s->sll;
		s->msgs[i].msg_hdr.msg_namelen = sizeof(s->sll);
	}
}

static void pin(struct sender *s)
{
	cpu_set_t set;

	if (s->cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
}

/*
 * How many packets to build for the next batch: 0 when a bound is reached,
 * after sleeping until the next batch is due when paced.
 */
static unsigned int next_batch(struct sender *s, uint64_t deadline)
{
	uint64_t now = now_ns(), left = s->quota - s->sent;
	unsigned int n = fl.rate ? s->pace_batch : fl.xdp ? XDP_CALL : fl.batch;

	if (!left || now >= deadline)
		return 0;
	if (fl.rate) {
		uint64_t due = fl.start_ns + (uint64_t)(s->sent * 1e9 / s->rate);

		while (due > now && !stopping()) {
			uint64_t until = due;

			if (until > deadline)
				until = deadline;
			if (until > now + SLEEP_MAX_NS)
				until = now + SLEEP_MAX_NS;
			sleep_until(until);
			now = now_ns();
			if (now >= deadline)
				return 0;
		}
	}
	return left < n ? left : n;
}

static void *sender_run(void *arg)
{
	struct sender *s = arg;
	uint64_t deadline;
	unsigned int len = 0, off = 0, i;

	pin(s);
	prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 us: pacing and backoff */
	pthread_barrier_wait(&start_barrier);
	deadline = fl.start_ns + (uint64_t)(fl.seconds * 1e9);
	while (!stopping()) {
		int r;

		if (off == len) {
			len = next_batch(s, deadline);
			if (!len || stopping())
				break;
			off = 0;
			for (i = 0; i < len; i++)
				fill_frame(s, s->iov[i].iov_base);
		} else if (now_ns() >= deadline) {
			break;
		}
		r = sendmmsg(s->fd, s->msgs + off, len - off, 0);
		if (r == (int)(len - off)) {
			off = len;
			s->sent += r;
			continue;
		}
		if (r > 0) {
			/*
			 * A short count: the next datagram failed, and the
			 * error is not reported (most likely ENOBUFS, the
			 * driver's queue was full).  Count it and retry.
			 */
			off += r;
			s->sent += r;
		} else if (errno == EINTR) {
			continue;
		}
		s->errors++;
		if (r >= 0 || errno == ENOBUFS || errno == EAGAIN) {
			sleep_until(now_ns() + BACKOFF_NS);
			continue;
		}
		s->err = errno;
		atomic_store(&stop_flag, 1);
		break;
	}
	return NULL;
}

/*
 * -X: the template, varied once here, goes to the live-frame test run in
 * calls of next_batch() frames; the program varies each frame and sends it
 * out of IFACE.  sent is the program's own count, read by main().
 */
static void *sender_run_xdp(void *arg)
{
	struct sender *s = arg;
	unsigned char frame[SLOT_SIZE] __attribute__((aligned(16)));
	struct xdp_md ctx = { .data_end = fl.frame_len, .ingress_ifindex = fl.ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = fl.frame_len,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
		    .batch_size = fl.batch);
	int prog = bpf_program__fd(fl.skel->progs.xdpflood);
	uint64_t deadline;
	unsigned int n;

	memcpy(frame, fl.tmpl + SLOT_PAD, fl.frame_len);
	fill_frame(s, frame);
	pin(s);
	pthread_barrier_wait(&start_barrier);
	deadline = fl.start_ns + (uint64_t)(fl.seconds * 1e9);
	while (!stopping()) {
		/* s->sent: the frames asked for so far, for next_batch() */
		n = next_batch(s, deadline);
		if (!n || stopping())
			break;
		opts.repeat = n;
		if (bpf_prog_test_run_opts(prog, &opts) && errno != EINTR) {
			s->err = errno;
			atomic_store(&stop_flag, 1);
			break;
		}
		s->sent += n;
	}
	return NULL;
}

static void xdp_setup(void)
{
	uint32_t mask;

	fl.skel = xdpflood_bpf__open();
	if (!fl.skel)
		die_errno("cannot open the XDP program for", fl.ifname);
	fl.skel->rodata->ifindex_out = fl.ifindex;
	memcpy(&mask, fl.hostmask, 4);
	fl.skel->rodata->rand_mask = fl.random_src ? ntohl(mask) : 0;
	if (xdpflood_bpf__load(fl.skel)) {
		if (errno == EPERM || errno == EACCES) {
			fprintf(stderr,
				PROG ": -X needs CAP_BPF and CAP_NET_ADMIN (run as root)\n");
			exit(1);
		}
		die_errno("cannot load the XDP program for", fl.ifname);
	}
}

/* the CPUs we may run on, for pinning one thread to each */
static int usable_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int cpu, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	for (cpu = 0; cpu < CPU_SETSIZE && n < max; cpu++)
		if (CPU_ISSET(cpu, &set))
			cpus[n++] = cpu;
	return n;
}

static void setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
	const char *src_arg = NULL, *cidr_arg = NULL, *dmac_arg = NULL, *smac_arg = NULL;
	static struct sender senders[MAX_THREADS];
	uint64_t sent = 0, errors = 0;
	int cpus[MAX_THREADS], ncpus, i, fd, err = 0;
	double elapsed;

	parse_args(argc, argv, &src_arg, &cidr_arg, &dmac_arg, &smac_arg);
	fl.ifindex = if_nametoindex(fl.ifname);
	if (!fl.ifindex)
		die_errno("no interface", fl.ifname);

	/* the first socket tells whether we may send at all */
	fd = fl.xdp ? socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0) : open_socket();
	if (fd < 0)
		die_errno("cannot open a socket for", fl.ifname);
	iface_mac(fd, smac_arg ? NULL : fl.smac);
	close(fd);
	if (fl.xdp)
		xdp_setup();
	if (!src_arg && !cidr_arg)
		iface_addr(fl.src);
	if (!dmac_arg)
		resolve_dmac();
	build_template();
	ncpus = usable_cpus(cpus, MAX_THREADS);
	for (i = 0; i < fl.threads; i++)
		sender_init(&senders[i], i, cpus, ncpus);

	setup_signals();
	pthread_barrier_init(&start_barrier, NULL, fl.threads + 1);
	for (i = 0; i < fl.threads; i++) {
		errno = pthread_create(&senders[i].tid, NULL, fl.xdp ? sender_run_xdp : sender_run,
				       &senders[i]);
		if (errno)
			die_errno("cannot start a sender thread for", fl.ifname);
	}
	fl.start_ns = now_ns();
	pthread_barrier_wait(&start_barrier);
	for (i = 0; i < fl.threads; i++) {
		pthread_join(senders[i].tid, NULL);
		sent += senders[i].sent;
		errors += senders[i].errors;
		if (senders[i].err && !err)
			err = senders[i].err;
	}
	/* before the closes: each waits for an RCU grace period */
	elapsed = (now_ns() - fl.start_ns) / 1e9;
	for (i = 0; i < fl.threads; i++)
		if (senders[i].fd >= 0)
			close(senders[i].fd);
	if (fl.xdp) {
		/* what the program handed on, an interrupted call's part too */
		sent = fl.skel->bss->frames;
		xdpflood_bpf__destroy(fl.skel);
	}
	if (err) {
		fprintf(stderr, PROG ": send on %s: %s (after %llu packets)\n", fl.ifname,
			strerror(err), (unsigned long long)sent);
		return 1;
	}
	printf("sent=%llu seconds=%.6f pps=%.0f errors=%llu\n", (unsigned long long)sent, elapsed,
	       elapsed > 0 ? sent / elapsed : 0.0, (unsigned long long)errors);
	return 0;
}
