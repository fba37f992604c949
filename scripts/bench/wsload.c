// SPDX-License-Identifier: GPL-2.0
/*
 * wsload: WebSocket echo load generator for make bench.
 *
 *   wsload HOST PORT PATH CONNS WINDOW SIZE SECONDS
 *
 * Opens CONNS connections to ws://HOST:PORT/PATH (IPv4), then keeps WINDOW
 * masked text messages of SIZE bytes (SIZE <= 125) in flight on each: every
 * echo that comes back is answered with a new message, sends batched per
 * read.  After SECONDS it prints "sent N echoed M seconds S" and exits.
 * One thread and one epoll set: the client is far cheaper per message than
 * the server's JavaScript handler, so the server is what saturates.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024

struct conn {
	int fd;
	size_t have; /* bytes of an incomplete frame kept in buf */
	unsigned char buf[4096];
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int handshake(const char *host, int port, const char *path)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	char req[512], resp[1024];
	size_t got = 0;
	int fd, one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "wsload: bad IPv4 address %s\n", host);
		exit(1);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\n\r\n",
		 path, host, port);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		die("write handshake");
	/* read exactly the response head: the server sends nothing after it
	 * until we do */
	while (got < sizeof(resp) - 1) {
		ssize_t n = read(fd, resp + got, 1);

		if (n <= 0)
			die("read handshake");
		got += n;
		resp[got] = 0;
		if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
			break;
	}
	if (strncmp(resp, "HTTP/1.1 101", 12)) {
		fprintf(stderr, "wsload: no upgrade: %.60s\n", resp);
		exit(1);
	}
	return fd;
}

/* Consume whole server frames in c->buf; returns how many arrived. */
static long consume(struct conn *c)
{
	size_t off = 0;
	long frames = 0;

	while (c->have - off >= 2) {
		size_t len = c->buf[off + 1] & 0x7f, hdr = 2;

		if (len == 126) {
			if (c->have - off < 4)
				break;
			len = (size_t)c->buf[off + 2] << 8 | c->buf[off + 3];
			hdr = 4;
		} else if (len == 127) {
			fprintf(stderr, "wsload: unexpected 64-bit frame\n");
			exit(1);
		}
		if (c->have - off < hdr + len)
			break;
		if ((c->buf[off] & 0x0f) == 0x1)
			frames++;
		off += hdr + len;
	}
	memmove(c->buf, c->buf + off, c->have - off);
	c->have -= off;
	return frames;
}

int main(int argc, char **argv)
{
	static struct conn conns[MAX_CONNS];
	unsigned char frame[6 + 125], *batch;
	struct epoll_event ev, evs[64];
	long sent = 0, echoed = 0;
	int nconns, window, size, ep;
	double secs, t0, end;

	if (argc != 8) {
		fprintf(stderr, "usage: wsload HOST PORT PATH CONNS WINDOW SIZE SECONDS\n");
		return 2;
	}
	nconns = atoi(argv[4]);
	window = atoi(argv[5]);
	size = atoi(argv[6]);
	secs = atof(argv[7]);
	if (nconns < 1 || nconns > MAX_CONNS || window < 1 || window > 512 || size < 1 ||
	    size > 125 || secs <= 0) {
		fprintf(stderr, "wsload: CONNS 1..%d, WINDOW 1..512, SIZE 1..125, SECONDS > 0\n",
			MAX_CONNS);
		return 2;
	}
	/* one masked text frame, mask 0x01020304 */
	frame[0] = 0x81;
	frame[1] = 0x80 | size;
	frame[2] = 1, frame[3] = 2, frame[4] = 3, frame[5] = 4;
	for (int i = 0; i < size; i++)
		frame[6 + i] = 'm' ^ frame[2 + i % 4];
	batch = malloc((size_t)(6 + size) * window);
	if (!batch)
		die("malloc");
	for (int i = 0; i < window; i++)
		memcpy(batch + (size_t)i * (6 + size), frame, 6 + size);

	ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < nconns; i++) {
		conns[i].fd = handshake(argv[1], atoi(argv[2]), argv[3]);
		ev.events = EPOLLIN;
		ev.data.ptr = &conns[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev))
			die("epoll_ctl");
	}
	t0 = now();
	end = t0 + secs;
	for (int i = 0; i < nconns; i++) {
		if (write(conns[i].fd, batch, (size_t)(6 + size) * window) < 0)
			die("write");
		sent += window;
	}
	while (now() < end) {
		int n = epoll_wait(ep, evs, 64, 100);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
			long got;

			if (r <= 0) {
				fprintf(stderr, "wsload: the server closed a connection\n");
				return 1;
			}
			c->have += r;
			got = consume(c);
			echoed += got;
			if (got) {
				size_t bytes = (size_t)(6 + size) * got;

				/* at most window are in flight, so got <= window
				 * unless the server sends frames of its own */
				if (got > window)
					bytes = (size_t)(6 + size) * window;
				if (write(c->fd, batch, bytes) < 0)
					die("write");
				sent += bytes / (6 + size);
			}
		}
	}
	printf("sent %ld echoed %ld seconds %.3f\n", sent, echoed, now() - t0);
	return 0;
}
