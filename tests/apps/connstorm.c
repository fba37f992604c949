// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Short-lived HTTP connections at a paced rate, for the fault tests
 * (tests/integration/test_faults.py): loopback only.
 *
 *   connstorm PORT RATE SECONDS [MAX_IN_FLIGHT]
 *
 * Attempt k is due at k/RATE s.  Each one connects to 127.0.0.1:PORT from
 * one of 64 loopback sources 127.0.1.x (more 4-tuples than one source has
 * ports), sends "GET / HTTP/1.1" with Connection: close, reads until the
 * server closes, then closes with a reset (no TIME_WAIT left on either
 * side).  It is ok when the answer began with "HTTP/1.1 200", failed
 * otherwise (refused, reset, 2 s without an answer, ...).  When
 * MAX_IN_FLIGHT (default 2000) attempts are open, due ones wait: the rate
 * achieved is what the server sustained.  Attempts still due at SECONDS are
 * not made; the in-flight ones are waited for (2 s at most).
 *
 * Prints one JSON line: {"attempted","ok","failed","seconds","rate",
 * "errors":{"timeout","refused","reset","other","bad_status"}}; exit 0
 * (2: bad arguments).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define TIMEOUT_NS 2000000000ULL
#define SOURCES	   64

static const char REQ[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

struct conn {
	int fd;
	int sent;
	unsigned long long deadline;
	char head[16];
	int nhead;
	struct conn *next_free;
};

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static unsigned long long attempted, ok, failed, e_timeout, e_refused, e_reset, e_other, e_status;

static void finish(int ep, struct conn *c, int err, struct conn **free_list, int *inflight)
{
	struct linger lg = { 1, 0 };

	if (!err && c->nhead >= 12 && !memcmp(c->head, "HTTP/1.1 200", 12)) {
		ok++;
	} else {
		failed++;
		if (err == ETIMEDOUT)
			e_timeout++;
		else if (err == ECONNREFUSED)
			e_refused++;
		else if (err == ECONNRESET || err == EPIPE)
			e_reset++;
		else if (err)
			e_other++;
		else
			e_status++;
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	c->next_free = *free_list;
	*free_list = c;
	(*inflight)--;
}

static int start(int ep, struct conn *c, int port, unsigned long long k)
{
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	src.sin_addr.s_addr = htonl(0x7f000100u | (unsigned)(1 + k % SOURCES));
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dst.sin_port = htons((unsigned short)port);
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) ||
	    (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) && errno != EINPROGRESS)) {
		int err = -errno;

		close(fd);
		return err;
	}
	c->fd = fd;
	c->sent = 0;
	c->nhead = 0;
	c->deadline = now_ns() + TIMEOUT_NS;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void on_event(int ep, struct conn *c, unsigned int events, struct conn **free_list,
		     int *inflight)
{
	char buf[4096];
	ssize_t n;

	if (!c->sent && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			finish(ep, c, err, free_list, inflight);
			return;
		}
		if (send(c->fd, REQ, sizeof(REQ) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(REQ) - 1) {
			finish(ep, c, errno ? errno : EPIPE, free_list, inflight);
			return;
		}
		c->sent = 1;
		{
			struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };

			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
	}
	if (!c->sent)
		return;
	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n > 0) {
			int take = (int)sizeof(c->head) - c->nhead;

			if (take > n)
				take = (int)n;
			memcpy(c->head + c->nhead, buf, (size_t)take);
			c->nhead += take;
			continue;
		}
		if (n == 0) {
			finish(ep, c, 0, free_list, inflight);
			return;
		}
		if (errno == EAGAIN)
			return;
		finish(ep, c, errno, free_list, inflight);
		return;
	}
}

int main(int argc, char **argv)
{
	int port, max_inflight = 2000, inflight = 0, ep;
	double rate, seconds;
	unsigned long long t0, stop, total;
	struct conn *conns, *free_list = NULL;
	struct epoll_event evs[256];
	struct rlimit rl;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: connstorm PORT RATE SECONDS [MAX_IN_FLIGHT]\n");
		return 2;
	}
	port = atoi(argv[1]);
	rate = atof(argv[2]);
	seconds = atof(argv[3]);
	if (argc == 5)
		max_inflight = atoi(argv[4]);
	if (port <= 0 || port > 65535 || rate <= 0 || seconds <= 0 || max_inflight <= 0) {
		fprintf(stderr, "connstorm: bad arguments\n");
		return 2;
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	conns = calloc((size_t)max_inflight, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0) {
		perror("connstorm");
		return 1;
	}
	for (int i = max_inflight - 1; i >= 0; i--) {
		conns[i].fd = -1;
		conns[i].next_free = free_list;
		free_list = &conns[i];
	}
	total = (unsigned long long)(rate * seconds);
	t0 = now_ns();
	stop = t0 + (unsigned long long)(seconds * 1e9);
	for (;;) {
		unsigned long long now = now_ns();
		unsigned long long due =
			now >= stop ? total
				    : (unsigned long long)((double)(now - t0) * rate / 1e9) + 1;
		int n;

		if (due > total)
			due = total;
		/* due attempts wait for a free slot; none is made after the stop */
		while (attempted < due && free_list && now < stop) {
			struct conn *c = free_list;
			int err;

			free_list = c->next_free;
			attempted++;
			inflight++;
			err = start(ep, c, port, attempted);
			if (err) {
				c->fd = -1;
				c->next_free = free_list;
				free_list = c;
				inflight--;
				failed++;
				if (err == -ECONNREFUSED)
					e_refused++;
				else
					e_other++;
			}
		}
		if (now >= stop && (!inflight || now >= stop + TIMEOUT_NS))
			break;
		n = epoll_wait(ep, evs, 256, 1);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->fd >= 0)
				on_event(ep, c, evs[i].events, &free_list, &inflight);
		}
		now = now_ns();
		for (int i = 0; i < max_inflight; i++)
			if (conns[i].fd >= 0 && now >= conns[i].deadline)
				finish(ep, &conns[i], ETIMEDOUT, &free_list, &inflight);
	}
	for (int i = 0; i < max_inflight; i++)
		if (conns[i].fd >= 0)
			finish(ep, &conns[i], ETIMEDOUT, &free_list, &inflight);
	{
		double el = (double)(now_ns() - t0) / 1e9;

		if (el > seconds)
			el = seconds; /* the rate over the attempt phase */
		printf("{\"attempted\": %llu, \"ok\": %llu, \"failed\": %llu, \"seconds\": %.3f, "
		       "\"rate\": %.1f, \"errors\": {\"timeout\": %llu, \"refused\": %llu, "
		       "\"reset\": %llu, \"other\": %llu, \"bad_status\": %llu}}\n",
		       attempted, ok, failed, el, (double)ok / el, e_timeout, e_refused, e_reset,
		       e_other, e_status);
	}
	return 0;
}
