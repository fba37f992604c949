/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The connection map's key and value, shared by the BPF programs (which own
 * the entries) and the daemon (which seeds connections that were open before
 * it attached, and removes those of exited targets).
 */
#ifndef BUNSCOPE_BS_CONN_H
#define BUNSCOPE_BS_CONN_H

#ifndef __bpf__
#define HP_TYPES_ONLY /* the daemon only needs the layout */
#endif
#include "http_parse.h"
#include "ws_parse.h"
#include "traceparent.h"

struct bs_conn_key {
	__u32 tgid;
	__u32 fd;
};

/*
 * What a request head said for its span, between its request line and its
 * end (kept only when traces are on): the target and the traceparent.
 */
struct bs_trace_in {
	__u8 trace_id[16];
	__u8 parent_id[8];
	__u8 tp_flags;
	__u8 tp;     /* BS_TP_* (traceparent.h) */
	__u8 ttrunc; /* the target was cut at BS_TRACE_TARGET_MAX */
	__u8 hlen;   /* client: the Host sent, in target[] after the target */
	__u16 tlen;  /* bytes in target[] */
	__u16 plen;  /* of which the path */
	__u8 target[BS_TRACE_TARGET_MAX];
};

struct bs_conn {
	struct hp_conn hp;
	__u16 port;	 /* local (listening) port, host order; client: the peer's */
	__u16 peer_port; /* host order */
	__u8 family;	 /* AF_INET, AF_INET6, AF_UNIX */
	__u8 client;	 /* the target connected (hp.cflags has HP_CF_CLIENT) */
	__u8 pad[2];
	__u8 peer[16];	     /* IPv4 in the first 4 bytes, network order */
	__u64 last_hash;     /* the last path seen on this connection ... */
	__u32 last_route;    /* ... and its route id (0: none yet) */
	__u32 stats_idx;     /* index into the stats array */
	__u32 series_idx;    /* the last histogram series used ... */
	__u32 series_route;  /* ... for this route, */
	__u16 series_status; /* status */
	__u8 series_method;  /* and method; */
	__u8 series_ok;	     /* 1 when series_* is valid */
	__u32 fd;	     /* the key's, for span records */
	__u64 born;	     /* accept/connect time (0: seeded), tells reused fds apart */
	struct ws_conn ws;   /* after a 101 to an Upgrade: websocket */
	struct bs_trace_in tr;
};

#endif /* BUNSCOPE_BS_CONN_H */
