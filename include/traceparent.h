/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * traceparent.h: the W3C Trace Context `traceparent` header value, parsed by
 * the BPF programs (from a copy of the header line) and by userspace (unit
 * tests, fuzzers), the same code on both sides.
 *
 *   version "-" trace-id "-" parent-id "-" trace-flags
 *   2 hex     32 hex         16 hex          2 hex        (lowercase only)
 *
 * Rules (W3C Trace Context Level 1, section 3.2 and 4.3):
 *   - version ff is invalid;
 *   - version 00 is exactly 55 characters;
 *   - a higher version is at least 55 characters, and if longer the 56th is
 *     '-' (its extra fields are ignored; the first four are read as 00's);
 *   - an all-zero trace-id or parent-id is invalid;
 *   - uppercase hex is invalid.
 * The caller trims optional whitespace around the value first.
 *
 * Include after vmlinux.h (BPF) or <linux/types.h> (userspace).
 */
#ifndef BUNSCOPE_TRACEPARENT_H
#define BUNSCOPE_TRACEPARENT_H

#ifdef __bpf__
#define TP_INLINE static __always_inline
#else
#define TP_INLINE static inline
#endif

#define TP_LEN		55 /* a version 00 value */
#define TP_FLAG_SAMPLED 0x01

/* what a request head said */
#define BS_TP_NONE  0 /* no traceparent */
#define BS_TP_VALID 1
#define BS_TP_BAD   2 /* invalid, or a second traceparent field: ignored */

struct bs_tp {
	__u8 trace_id[16];
	__u8 parent_id[8];
	__u8 flags;
	__u8 version;
};

/* 0..15 for a lowercase hex digit, 16 for anything else */
TP_INLINE __u32 tp_nibble(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return 16;
}

/* Two hex digits at v into *out; 0 on success. */
TP_INLINE int tp_byte(const __u8 *v, __u8 *out)
{
	__u32 hi = tp_nibble(v[0]), lo = tp_nibble(v[1]);

	if ((hi | lo) & 16)
		return -1;
	*out = (__u8)(hi << 4 | lo);
	return 0;
}

/*
 * Parse the len bytes at v (at least TP_LEN + 1 of them readable when len >
 * TP_LEN) into *tp.  Returns 0 for a valid value, -1 otherwise.
 */
TP_INLINE int tp_parse(const __u8 *v, __u32 len, struct bs_tp *tp)
{
	__u8 any_t = 0, any_p = 0;
	int bad = 0;

	if (len < TP_LEN)
		return -1;
	if (v[2] != '-' || v[35] != '-' || v[52] != '-')
		return -1;
	bad |= tp_byte(v, &tp->version);
	if (bad || tp->version == 0xff)
		return -1;
	if (tp->version == 0 ? len != TP_LEN : (len > TP_LEN && v[TP_LEN] != '-'))
		return -1;
	for (int i = 0; i < 16; i++) {
		bad |= tp_byte(v + 3 + 2 * i, &tp->trace_id[i]);
		any_t |= tp->trace_id[i];
	}
	for (int i = 0; i < 8; i++) {
		bad |= tp_byte(v + 36 + 2 * i, &tp->parent_id[i]);
		any_p |= tp->parent_id[i];
	}
	bad |= tp_byte(v + 53, &tp->flags);
	if (bad || !any_t || !any_p)
		return -1;
	return 0;
}

#endif /* BUNSCOPE_TRACEPARENT_H */
