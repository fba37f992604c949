/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ws_parse.h: WebSocket (RFC 6455) framing of a connection after its 101
 * upgrade, shared by the BPF programs and the userspace unit tests.
 *
 * It walks the same segments as http_parse.h (struct hp_run / hp_pos) once a
 * direction is in state HS_WS.  Only frame headers (at most 14 bytes) and the
 * two status-code bytes of close frames are read; payloads are skipped, never
 * copied or unmasked.  Frame headers may be split anywhere between reads, one
 * read may hold many frames (Bun corks), messages may be fragmented with
 * control frames between the fragments, lengths may be 7, 16 or 64 bits.
 *
 * Per frame the includer is told (ws_on_frame) its payload bytes, the kind of
 * message it belongs to and whether it ended a message: a fragmented message
 * is one message.  A frame Bun's uWS would refuse (unknown opcode, RSV2/3,
 * bad masking, fragmented or long control frame, orphan continuation, 64-bit
 * length with the top bit set) gives that direction up (ws_on_error): Bun
 * closes such a connection anyway.
 *
 * Include after http_parse.h's hooks are declared; define before including:
 *   ws_on_frame(r, dir, kind, bytes, msg_end)   enum bs_ws_kind
 *   ws_on_close_frame(r, dir, code)             1005 when no code was sent,
 *                                               WS_CODE_SHORT for a one-byte body
 *   ws_on_error(r, dir, reason)                 enum ws_err
 */
#ifndef BUNSCOPE_WS_PARSE_H
#define BUNSCOPE_WS_PARSE_H

#include "http_parse.h"

#define WS_OP_CONT   0x0
#define WS_OP_TEXT   0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PING   0x9
#define WS_OP_PONG   0xA

#define WS_HDR_MAX    14 /* 2 + 8 (length) + 4 (mask) */
/* segment bytes read at once for frame headers: 1024 (a read of up to ~25
 * small frames in one copy; 256 cost 8 ns more a message in the echo
 * benchmark), or less in the unit tests' small-window builds (down to 16, a
 * whole header) */
#define WS_WIN	      (HP_WIN < 16 ? 16 : HP_WIN < 1024 ? HP_WIN : 1024)
#define WS_CODE_NONE  1005 /* RFC 6455 7.4.1: no status code was present */
#define WS_CODE_SHORT 1	   /* a one-byte close body (RFC 6455 5.5.1): no valid code */

enum ws_state {
	WS_HEADER = 0, /* a frame header is expected */
	WS_PAYLOAD,    /* d->left payload bytes of the current frame follow */
	WS_DEAD,       /* given up: bytes are only counted */
};

enum ws_err {
	WS_E_OPCODE = 0, /* reserved opcode */
	WS_E_RSV,	 /* RSV2/RSV3, or RSV1 where no message starts */
	WS_E_CONTROL,	 /* control frame fragmented or longer than 125 */
	WS_E_SEQUENCE,	 /* continuation without a message, or a new one inside one */
	WS_E_MASK,	 /* client frame unmasked or server frame masked */
	WS_E_LENGTH,	 /* 64-bit length with the most significant bit set */
	WS_E_READ,	 /* the bytes could not be read */
	WS_E_MAX,
};

struct ws_dir {
	__u64 left;	 /* payload bytes of the current frame not passed yet */
	__u64 frame_len; /* payload length of the current frame */
	__u8 hdr[16];	 /* a frame header split between segments */
	__u8 hdr_have;	 /* bytes of it in hdr */
	__u8 state;	 /* enum ws_state */
	__u8 op;	 /* opcode of the current frame */
	__u8 fin;
	__u8 msg_op;	/* opcode of the unfinished fragmented message, 0: none */
	__u8 code_have; /* close frame: status-code bytes seen */
	__u8 code[2];
	__u8 mask[4];
	__u8 pad[4];
};

/* The WebSocket side of a connection. */
struct ws_conn {
	struct ws_dir dir[2]; /* 0: client to server (masked), 1: server to client */
	__u64 open_ns;	      /* when the 101 was handed to the kernel */
	__u64 hash;	      /* path hash of the upgrade request */
	__u32 route;	      /* its route id, BS_ROUTE_UNRESOLVED until known */
	__u16 close_code;     /* status code of the first close frame, 0: none seen */
	__u8 open;	      /* 1 from the 101 to the connection's end */
	__u8 traced;	      /* its upgrade request had a span: the connection gets one */
	__u32 tr_seq;	      /* that request's number */
	__u32 pad;
	__u64 tr_msgs[2];  /* data messages (text, binary), [0] in, [1] out */
	__u64 tr_bytes[2]; /* their payload bytes */
};

#ifndef HP_TYPES_ONLY

HP_INLINE void ws_on_frame(struct hp_run *r, int dir, __u32 kind, __u64 bytes, int msg_end);
HP_INLINE void ws_on_close_frame(struct hp_run *r, int dir, __u16 code);
HP_INLINE void ws_on_error(struct hp_run *r, int dir, int reason);

HP_INLINE void ws_fail(struct hp_run *r, struct ws_dir *d, int dir, int reason)
{
	d->state = WS_DEAD;
	r->v->off = r->v->n;
	ws_on_error(r, dir, reason);
}

/* The current frame has passed completely. */
HP_INLINE void ws_frame_end(struct hp_run *r, struct ws_dir *d, int dir)
{
	d->state = WS_HEADER;
	if (d->op == WS_OP_CLOSE) {
		__u16 code = WS_CODE_NONE;

		if (d->code_have >= 2)
			code = (__u16)((d->code[0] << 8) | d->code[1]);
		else if (d->frame_len == 1)
			code = WS_CODE_SHORT; /* not "no code": counted invalid */
		ws_on_close_frame(r, dir, code);
		ws_on_frame(r, dir, BS_WS_CLOSE, d->frame_len, 1);
	} else if (d->op == WS_OP_PING) {
		ws_on_frame(r, dir, BS_WS_PING, d->frame_len, 1);
	} else if (d->op == WS_OP_PONG) {
		ws_on_frame(r, dir, BS_WS_PONG, d->frame_len, 1);
	} else {
		ws_on_frame(r, dir, d->msg_op == WS_OP_TEXT ? BS_WS_TEXT : BS_WS_BINARY,
			    d->frame_len, d->fin);
		if (d->fin)
			d->msg_op = 0;
	}
}

/* Skip payload bytes of the current frame that this segment holds. */
HP_INLINE void ws_skip(struct hp_run *r, struct ws_dir *d, int dir)
{
	__u64 avail = r->v->n - r->v->off;
	__u64 k = d->left < avail ? d->left : avail;

	r->v->off += (__u32)k;
	d->left -= k;
	if (!d->left)
		ws_frame_end(r, d, dir);
}

/*
 * The next k bytes of the segment to h + have.  A header that starts in this
 * segment is taken from the window (scr[HP_WIN_OFF...]), which holds up to
 * WS_WIN bytes of the segment from wbase: one read serves every small frame
 * it covers.  Only headers continued from an earlier segment, and the
 * window's refills, read the segment itself.
 */
HP_INLINE int ws_fetch(struct hp_run *r, __u8 *h, __u32 have, __u32 k)
{
	struct hp_pos *v = r->v;
	__u32 rel;

	if (have)
		return hp_src_read(r, h + have, k, v->off);
	if (!v->ws_win || v->off < v->wbase || v->off - v->wbase + k > v->wlen) {
		__u32 len = hp_clamp(r, v->n - v->off, WS_WIN);

		if (len < k || hp_src_read(r, r->scr + HP_WIN_OFF, len, v->off))
			return -1;
		v->wbase = v->off;
		v->wlen = len;
		v->ws_win = 1;
	}
	/* 16 bytes from the window; past wlen they are stale, and unused */
	rel = HP_WIN_OFF + (v->off - v->wbase);
	*(__u64 *)h = hp_w(r, rel);
	*(__u64 *)(h + 8) = hp_w(r, rel + 8);
	return 0;
}

/*
 * A frame header starts at the segment's offset (or continues the one kept
 * in d->hdr).  The header is assembled in scr[0, 32): the kept bytes, then
 * what this segment adds.
 */
HP_INLINE int ws_header(struct hp_run *r, struct ws_dir *d, int dir)
{
	__u8 *h = r->scr;
	__u32 have = d->hdr_have & 15, avail = r->v->n - r->v->off, k, total, hlen, len7;
	__u8 b0, b1, op, rsv, masked;
	__u64 len;

	if (have >= WS_HDR_MAX) {
		ws_fail(r, d, dir, WS_E_READ); /* cannot happen: kept headers are partial */
		return 1;
	}
	k = WS_HDR_MAX - have;
	if (k > avail)
		k = avail;
	k = hp_clamp(r, k, WS_HDR_MAX);
	if (have) { /* else ws_fetch() fills all 16 bytes */
		*(__u64 *)h = *(__u64 *)d->hdr;
		*(__u64 *)(h + 8) = *(__u64 *)(d->hdr + 8);
	}
	if (ws_fetch(r, h, have, k)) {
		ws_fail(r, d, dir, WS_E_READ);
		return 1;
	}
	total = have + k;
	if (total < 2)
		goto partial;
	b0 = h[0];
	b1 = h[1];
	masked = b1 >> 7;
	len7 = b1 & 0x7f;
	hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
	if (total < hlen)
		goto partial;

	op = b0 & 0x0f;
	rsv = (b0 >> 4) & 0x07;
	if (masked != (dir ? 0 : 1)) {
		ws_fail(r, d, dir, WS_E_MASK);
		return 1;
	}
	if (op & 0x08) {
		if (op > WS_OP_PONG) {
			ws_fail(r, d, dir, WS_E_OPCODE);
			return 1;
		}
		if (!(b0 & 0x80) || len7 > 125) {
			ws_fail(r, d, dir, WS_E_CONTROL);
			return 1;
		}
		if (rsv) {
			ws_fail(r, d, dir, WS_E_RSV);
			return 1;
		}
	} else {
		if (op > WS_OP_BINARY) {
			ws_fail(r, d, dir, WS_E_OPCODE);
			return 1;
		}
		/* RSV1 marks a compressed message (permessage-deflate): first frame only */
		if ((rsv & 0x03) || (rsv && op == WS_OP_CONT)) {
			ws_fail(r, d, dir, WS_E_RSV);
			return 1;
		}
		if ((op == WS_OP_CONT) != (d->msg_op != 0)) {
			ws_fail(r, d, dir, WS_E_SEQUENCE);
			return 1;
		}
	}

	if (len7 == 126) {
		len = ((__u64)h[2] << 8) | h[3];
	} else if (len7 == 127) {
		len = 0;
		for (int i = 2; i < 10; i++)
			len = (len << 8) | h[i];
		if (len >> 63) {
			ws_fail(r, d, dir, WS_E_LENGTH);
			return 1;
		}
	} else {
		len = len7;
	}
	if (masked && op == WS_OP_CLOSE) { /* the mask unmasks the close code only */
		__u32 mo = (hlen - 4) & 15;

		d->mask[0] = h[mo];
		d->mask[1] = h[mo + 1];
		d->mask[2] = h[mo + 2];
		d->mask[3] = h[mo + 3];
	}

	r->v->off += hlen - have;
	d->hdr_have = 0;
	d->op = op;
	d->fin = b0 >> 7;
	if (op == WS_OP_TEXT || op == WS_OP_BINARY)
		d->msg_op = op;
	d->frame_len = len;
	d->left = len;
	d->code_have = 0;
	d->state = WS_PAYLOAD;
	if (op != WS_OP_CLOSE || !len)
		ws_skip(r, d, dir); /* whatever of the payload is here */
	return 0;

partial:
	/* keep what there is; the next segment completes it */
	*(__u64 *)d->hdr = *(__u64 *)h;
	*(__u64 *)(d->hdr + 8) = *(__u64 *)(h + 8);
	d->hdr_have = (__u8)total;
	r->v->off = r->v->n;
	return 1;
}

/* The payload of a close frame: its first two bytes are the status code. */
HP_INLINE int ws_close_payload(struct hp_run *r, struct ws_dir *d, int dir)
{
	__u8 b;

	if (d->code_have >= 2 || !r->v->readable) {
		ws_skip(r, d, dir);
		return 0;
	}
	if (hp_src_read(r, &b, 1, r->v->off)) {
		ws_fail(r, d, dir, WS_E_READ);
		return 1;
	}
	if (!dir)
		b ^= d->mask[(d->frame_len - d->left) & 3];
	d->code[d->code_have & 1] = b;
	d->code_have++;
	r->v->off++;
	d->left--;
	if (!d->left)
		ws_frame_end(r, d, dir);
	return 0;
}

/*
 * One step over the segment in direction dir: a frame header (and whatever
 * of its payload the segment holds) or a run of payload.  Every step but the
 * last of a segment consumes at least one byte.  Returns 1 when the segment
 * is done.
 */
HP_INLINE int ws_step(struct hp_run *r, struct ws_dir *d, int dir)
{
	if (r->v->off >= r->v->n)
		return 1;
	switch (d->state) {
	case WS_PAYLOAD:
		if (d->op == WS_OP_CLOSE)
			return ws_close_payload(r, d, dir);
		ws_skip(r, d, dir);
		return 0;
	case WS_HEADER:
		if (!r->v->readable) {
			ws_fail(r, d, dir, WS_E_READ);
			return 1;
		}
		return ws_header(r, d, dir);
	default:
		r->v->off = r->v->n;
		return 1;
	}
}

#endif /* !HP_TYPES_ONLY */
#endif /* BUNSCOPE_WS_PARSE_H */
