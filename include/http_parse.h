/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http_parse.h: HTTP/1.x framing of one server connection, shared by the BPF
 * programs (which run it on every recv/send of the target) and userspace
 * (unit tests and fuzzers run exactly the same code).
 *
 * What it decides, per connection and direction:
 *   - where each request head ends (the moment Bun's pendingRequests goes +1),
 *     applying the same acceptance rules as Bun's uWS parser so that requests
 *     Bun rejects are never counted as pending;
 *   - where each response ends (Content-Length, chunked, HEAD/204/304/1xx,
 *     until-close), the moment the request stops being pending;
 *   - request/response body sizes, method, path hash and status.
 *
 * Data model: the caller feeds stream segments (the bytes a syscall moved).
 * Segments are examined through a window of at most HP_WIN bytes copied into
 * a scratch buffer; body bytes are skipped by count and never copied.  A line
 * split across windows or segments keeps its first bytes in a per-direction
 * carry and is made contiguous again in the scratch buffer when it ends.
 *
 * Work is done in steps (hp_step_req / hp_step_resp); every step consumes at
 * least one byte, so a segment of n bytes needs at most n + 1 steps.  BPF
 * drives the steps with bpf_loop(), userspace with a plain loop.
 *
 * The includer provides the hooks declared below (stats, route lookup, how to
 * read the segment) and may add fields to struct hp_run with HP_RUN_EXTRA.
 * Code that needs only the types defines HP_TYPES_ONLY first.
 */
#ifndef BUNSCOPE_HTTP_PARSE_H
#define BUNSCOPE_HTTP_PARSE_H

#include "bunscope.h"

#ifdef __bpf__
#define HP_INLINE	     static __always_inline
#define hp_copy(dst, src, n) bpf_probe_read_kernel((dst), (n), (src))
#else
#include <string.h>
#define HP_INLINE	     static inline
#define hp_copy(dst, src, n) memcpy((dst), (src), (n))
#endif

#ifndef HP_NO_FAST
#define HP_NO_FAST 0 /* 1: no inline fast path for ordinary fields (tests) */
#endif
#ifndef HP_WIN
#define HP_WIN 4096 /* stream bytes examined per window */
#endif
#define HP_CARRY_REQ  256 /* bytes of a split request line kept */
#define HP_CARRY_RESP 64  /* bytes of a split response line kept */
#define HP_CARRY_MAX  256
#define HP_WIN_OFF    HP_CARRY_MAX /* window data starts here in scratch */
#define HP_SCR	      8192	   /* power of two, >= HP_WIN_OFF + HP_WIN */
#define HP_SCR_MASK   (HP_SCR - 1)
#define HP_SCR_ALLOC  (HP_SCR + HP_CARRY_MAX + 16)
#define HP_FIFO	      8			    /* response-pending request slots per connection */
#define HP_SCAN_WORDS 64		    /* 8-byte words examined per scanning step */
#define HP_MAX_HEAD   16384		    /* Bun: BUN_DEFAULT_MAX_HTTP_HEADER_SIZE */
#define HP_MAX_FIELDS 198		    /* Bun: UWS_HTTP_MAX_HEADERS_COUNT - 2 */
#define HP_CL_MAX     0x3FFFFFFFFFFFFFFFULL /* uWS STATE_SIZE_MASK */

#if HP_WIN_OFF + HP_WIN > HP_SCR
#error "HP_WIN too large for the scratch buffer"
#endif

enum hp_state {
	HS_START = 0,	/* a start line is expected */
	HS_FIELDS,	/* inside the header fields */
	HS_BODY,	/* Content-Length body: d->remaining bytes left */
	HS_CHUNK_SIZE,	/* a chunk-size line is expected */
	HS_CHUNK_DATA,	/* chunk data and its CRLF: d->remaining bytes left */
	HS_CHUNK_LAST,	/* the two bytes after the last-chunk line */
	HS_UNTIL_CLOSE, /* response body delimited by the connection's end */
	HS_HOLD,	/* request side after an Upgrade request: wait for the answer */
	HS_RESYNC,	/* attached mid-stream: wait for something recognisable */
	HS_DEAD,	/* rejected, desynchronised or tunnelled: bytes are ignored */
	HS_WS,		/* upgraded to WebSocket: ws_parse.h walks the bytes */
};

/* Why a stream was given up (hp_on_desync). */
enum hp_desync {
	HP_DS_UNREADABLE = 0, /* head bytes went through sendfile or too many iovecs */
	HP_DS_READ,	      /* copying the segment failed */
	HP_DS_RESPONSE,	      /* the target wrote something that is not an HTTP/1.x response */
	HP_DS_LONG_FIELD, /* a framing field (CL/TE, a chunk size) too long to keep across reads */
	HP_DS_HOLD,	  /* bytes arrived while an Upgrade was unanswered */
	HP_DS_STEPS,	  /* the step budget of one syscall ran out */
	HP_DS_MAX,
};

/* hp_dir.dflags */
#define HP_DF_CR	 0x01 /* the carried partial line ends in CR */
#define HP_DF_SEEN	 0x02 /* a message has started in this direction */
#define HP_DF_CHUNK_END	 0x04 /* request: the CRLF after chunk data is the next line */
#define HP_DF_CHUNK_LAST 0x08 /* request: the last chunk was read, its CRLF is next */

#define HP_CHUNK_MAX	 0x3ffffffffffffffULL /* Bun: the largest chunk size (2^58 - 1) */
#define HP_CHUNK_EXT_MAX 16384 /* Bun: bytes of a chunk extension, its ';' included */
#define HP_CHUNK_ZEROS	 8     /* words of leading zeros of a chunk size skipped */

/* hp_dir.mflags for a request head */
#define HP_RF_ANCIENT	0x01 /* HTTP/1.0 */
#define HP_RF_CONNECT	0x02
#define HP_RF_HOST	0x04
#define HP_RF_CL	0x08
#define HP_RF_TE	0x10
#define HP_RF_UPGRADE	0x20
/* hp_dir.mflags for a response head */
#define HP_PF_CL	0x01
#define HP_PF_CHUNKED	0x02
#define HP_PF_CONNCLOSE 0x04

/* hp_slot.flags */
#define HP_SF_HEAD    0x01 /* HEAD: the response has no body */
#define HP_SF_BODY    0x02 /* the request has a body */
#define HP_SF_UPGRADE 0x04
#define HP_SF_TRACED  0x08 /* sampled: its requests have spans */

/* hp_conn.cflags */
#define HP_CF_REJECTED 0x01 /* bunscope rejected a request on this connection */
#define HP_CF_UPGRADED 0x02 /* 101 Switching Protocols was sent */
/* the target made this connection: requests are what it writes, responses
 * what it reads, and Bun's server rules (canned errors, upgrades) do not apply */
#define HP_CF_CLIENT   0x04

/* State of one direction of one connection. */
struct hp_dir {
	__u64 remaining; /* body or chunk bytes still to skip */
	__u64 body;	 /* body bytes of the current message */
	__u64 cl;	 /* Content-Length of the current head */
	__u64 hash;	 /* request: path hash */
	__u32 head_len;	 /* bytes of the current head so far */
	__u32 route;	 /* request: route id (BS_ROUTE_UNRESOLVED if unknown) */
	__u16 nfields;
	__u16 line_len;	 /* length of the carried partial line (saturates) */
	__u16 carry_len; /* bytes of it kept in the carry */
	__u16 cl_len;	 /* request: digits of the first Content-Length */
	__u16 status;	 /* response: status code */
	__u8 state;	 /* enum hp_state */
	__u8 mflags;	 /* HP_RF_* or HP_PF_* */
	__u8 method;	 /* request: enum bs_method */
	__u8 dflags;	 /* HP_DF_* */
	__u8 pad[2];
};

/* One or more requests whose responses have not been completed yet. */
struct hp_slot {
	__u64 start_ns; /* when the head was parsed */
	__u64 path_hash;
	__u64 req_body; /* request body bytes (final once the body ended) */
	__u32 route_id;
	__u32 seq;   /* sequence number of the first request in the slot */
	__u32 count; /* identical bodiless requests parsed in the same read */
	__u8 method;
	__u8 flags; /* HP_SF_* */
	__u8 pad[2];
};

struct hp_conn {
	struct hp_dir req;
	struct hp_dir resp;
	struct hp_slot fifo[HP_FIFO];
	/*
	 * Requests pipelined beyond the slots wait here, in order, after the
	 * slots' ones: only their number, when the first arrived and which of
	 * the oldest 64 are HEAD (bit 0 is the oldest; a HEAD deeper than that
	 * is framed as if its answer had a body).  They complete as _other.
	 */
	struct hp_slot ovf;
	__u64 ovf_head;
	__u64 ovf_traced; /* which of the oldest 64 have spans; ovf.flags and
				 * ovf.seq describe the oldest */
	__u32 next_seq;	  /* sequence number of the next request */
	__u32 body_seq;	  /* sequence number of the request whose body is read */
	__u8 fifo_head;
	__u8 fifo_len;
	__u8 cflags; /* HP_CF_* */
	__u8 pad[5];
	/*
	 * The last request line (up to 32 bytes, without CRLF) and what it
	 * parsed to: an identical line on the same connection (a keep-alive
	 * client repeating itself) takes the result without parsing again.
	 */
	__u64 rl_w[4];
	__u64 rl_hash;
	__u32 rl_route; /* BS_ROUTE_UNRESOLVED: nothing cached */
	__u8 rl_len;
	__u8 rl_method;
	__u8 rl_mflags;
	__u8 rl_tr; /* the includer's copy of the target is this line's */
	__u8 req_carry[HP_CARRY_REQ];
	__u8 resp_carry[HP_CARRY_RESP];
};

#ifndef HP_RUN_EXTRA
#define HP_RUN_EXTRA
#endif

/*
 * Position of the walk over one stream segment.  In BPF it lives in map
 * memory, not on the stack: values loaded from a map are unknown to the
 * verifier, which keeps the number of states it explores small.
 */
struct hp_pos {
	__u64 src;	  /* where the segment is (for hp_src_read) */
	__u32 n;	  /* bytes in the segment */
	__u32 off;	  /* bytes of the segment consumed */
	__u32 wbase;	  /* segment offset of scr[HP_WIN_OFF] */
	__u32 wlen;	  /* bytes in the window, 0 if none loaded */
	__u32 ls;	  /* scr index where the current line starts */
	__u32 lprev;	  /* bytes of the current line missing from scr */
	__u32 tmp;	  /* see hp_opaque() */
	__u32 line_s;	  /* the complete line hp_line_do() handles: */
	__u32 line_e;	  /*   scr[line_s, line_e) without CRLF, */
	__u32 line_total; /*   its real length, */
	__u32 line_trunc; /*   1 if its middle is missing */
	__u64 tmp64;
	__u8 readable; /* the segment's bytes can be read */
	__u8 in_line;  /* ls/lprev describe the line being scanned */
	__u8 ws_win;   /* the window was loaded by the WebSocket parser */
	__u8 pad;
};

/* One stream segment being processed. */
struct hp_run {
	struct hp_conn *c;
	__u8 *scr; /* HP_SCR_ALLOC bytes */
	struct hp_pos *v;
	__u64 now; /* timestamp of this syscall, ns */
	HP_RUN_EXTRA
};

#ifndef HP_TYPES_ONLY

/* ---- hooks the includer defines ---------------------------------------- */

/* Copy len bytes of the segment at offset off into dst; 0 on success. */
HP_INLINE int hp_src_read(struct hp_run *r, __u8 *dst, __u32 len, __u32 off);
/* Seed of the path hash. */
HP_INLINE __u64 hp_seed(void);
/* A request path was parsed: scr[start, start + len).  Returns its route id
 * or BS_ROUTE_UNRESOLVED. */
HP_INLINE __u32 hp_on_path(struct hp_run *r, __u64 hash, __u32 start, __u32 len, int truncated);
HP_INLINE void hp_on_start(struct hp_run *r);
HP_INLINE void hp_on_complete(struct hp_run *r, struct hp_slot *s, __u16 status, __u64 req_body,
			      __u64 resp_body);
/* The first count requests of slot s are lost (the connection died). */
HP_INLINE void hp_on_abort(struct hp_run *r, struct hp_slot *s, __u32 count);
/* The oldest request, of slot s, was refused by Bun after all. */
HP_INLINE void hp_on_unstart(struct hp_run *r, struct hp_slot *s);
HP_INLINE void hp_on_reject(struct hp_run *r, int reason);
HP_INLINE void hp_on_timeout(struct hp_run *r);
HP_INLINE void hp_on_desync(struct hp_run *r, int reason);
HP_INLINE void hp_on_overflow(struct hp_run *r);
/* A 101 answered the upgrade request s: a WebSocket opens (state HS_WS). */
HP_INLINE void hp_on_upgrade(struct hp_run *r, struct hp_slot *s);
/*
 * Traces.  hp_trace_on(): do targets and trace fields matter?  When it says
 * so: hp_on_target() gets each request's target, scr[start, start + tlen)
 * (plen bytes of path; ttrunc: the target went on beyond), or
 * hp_on_target_again() when the request line repeats the previous one (the
 * includer's copy from then still holds); hp_on_trace_field() gets each
 * traceparent (which HP_TF_TRACEPARENT) and tracestate (HP_TF_TRACESTATE)
 * value and, on a client connection, the Host (HP_TF_HOST), scr[vs, ve)
 * trimmed (trunc: its middle is missing); hp_trace_sample() decides at the end of
 * the head; hp_on_span_start() is told the slot and number a sampled request
 * got (returning 0 leaves it without a span).
 */
enum hp_trace_field {
	HP_TF_TRACEPARENT = 0,
	HP_TF_TRACESTATE,
	HP_TF_HOST, /* client connections only: where the observed app sends its request */
};
HP_INLINE int hp_trace_on(struct hp_run *r);
HP_INLINE void hp_on_target(struct hp_run *r, __u32 start, __u32 plen, __u32 tlen, int ttrunc);
HP_INLINE void hp_on_target_again(struct hp_run *r);
HP_INLINE void hp_on_trace_field(struct hp_run *r, int which, __u32 vs, __u32 ve, int trunc);
HP_INLINE int hp_trace_sample(struct hp_run *r);
HP_INLINE int hp_on_span_start(struct hp_run *r, struct hp_slot *s, __u32 seq);

/* ---- byte and word primitives ------------------------------------------ */

#define HP_ONES	  0x0101010101010101ULL
#define HP_HIGHS  0x8080808080808080ULL
#define HP_REP(c) (HP_ONES * (__u8)(c))

HP_INLINE __u8 hp_b(const struct hp_run *r, __u32 i)
{
	return r->scr[i & HP_SCR_MASK];
}

HP_INLINE __u64 hp_w(const struct hp_run *r, __u32 i)
{
#ifdef __bpf__
	return *(const __u64 *)(r->scr + (i & HP_SCR_MASK));
#else
	__u64 w;

	memcpy(&w, r->scr + (i & HP_SCR_MASK), sizeof(w));
	return w;
#endif
}

/*
 * Hide a computed position from the BPF verifier: round-trip it through map
 * memory so that it becomes an unknown (but checked) scalar.  Without this
 * the verifier follows every exit of every scanning loop as a separate state.
 */
HP_INLINE __u32 hp_opaque(const struct hp_run *r, __u32 x)
{
#ifdef __bpf__
	*(volatile __u32 *)&r->v->tmp = x;
	return *(volatile __u32 *)&r->v->tmp;
#else
	(void)r;
	return x;
#endif
}

HP_INLINE __u64 hp_opaque64(const struct hp_run *r, __u64 x)
{
#ifdef __bpf__
	*(volatile __u64 *)&r->v->tmp64 = x;
	return *(volatile __u64 *)&r->v->tmp64;
#else
	(void)r;
	return x;
#endif
}

/* min(x, max) in a form the verifier can follow into a helper's size. */
HP_INLINE __u32 hp_clamp(const struct hp_run *r, __u32 x, __u32 max)
{
	x = hp_opaque(r, x);
	if (x > max)
		x = max;
	return x;
}

/*
 * High bit of each byte of x that is < n (n <= 128).  The lowest flagged
 * byte is always exact; bytes above it may be flagged spuriously.
 */
HP_INLINE __u64 hp_hasless(__u64 x, __u64 n)
{
	return (x - HP_ONES * n) & ~x & HP_HIGHS;
}

/* Index of the lowest flagged byte of a non-zero hp_hasless() result. */
HP_INLINE __u32 hp_lowbyte(__u64 m)
{
	__u64 lsb = m & (~m + 1);

	return (__u32)(((lsb >> 7) * 0x0001020304050607ULL) >> 56);
}

/* The low n bytes of w (n < 8). */
HP_INLINE __u64 hp_lowbytes(__u64 w, __u32 n)
{
	return w & ((1ULL << ((n & 7) * 8)) - 1);
}

/* RFC 9110 token characters: what uWS accepts in a field name. */
static const __u8 hp_tchars[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
	['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
	['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
	['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
	['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
	['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
	['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
	['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
	['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

HP_INLINE int hp_tchar(__u8 c)
{
	return hp_tchars[c];
}

HP_INLINE int hp_ows(__u8 c)
{
	return c == ' ' || c == '\t';
}

/*
 * First index in [p, e) of a byte < lim (0x20: a CTL; 0x21: a CTL or a
 * space).  *found says whether one was found; if not, returns e or the
 * position where this step's budget ended.
 */
HP_INLINE __u32 hp_scan_ctl(const struct hp_run *r, __u32 p, __u32 e, int *found, __u64 lim)
{
	*found = 0;
	for (int i = 0; i < HP_SCAN_WORDS; i++) {
		__u64 m;

		if (p >= e)
			return e;
		m = hp_hasless(hp_w(r, p), lim);
		if (m) {
			__u32 q = p + hp_lowbyte(m);

			if (q >= e)
				return e;
			*found = 1;
			return hp_opaque(r, q);
		}
		p += 8;
	}
	return hp_opaque(r, p < e ? p : e);
}

/*
 * First index in [p, e) of the byte c, looking at no more than 8 * words
 * bytes; e if there is none there.
 */
HP_INLINE __u32 hp_find(const struct hp_run *r, __u32 p, __u32 e, __u8 c, const int words)
{
	__u32 q = e;

	for (int i = 0; i < words; i++) {
		__u64 m;

		if (p >= e)
			break;
		m = hp_hasless(hp_w(r, p) ^ HP_REP(c), 1);
		if (m) {
			q = p + hp_lowbyte(m);
			if (q > e)
				q = e;
			break;
		}
		p += 8;
	}
	return hp_opaque(r, q);
}

/* Keyed hash of scr[p, p + len), len <= BS_PATH_MAX. */
HP_INLINE __u64 hp_hash(const struct hp_run *r, __u32 p, __u32 len)
{
	__u64 h = hp_seed() ^ ((__u64)len * 0x9E3779B97F4A7C15ULL);

	for (int i = 0; i < BS_PATH_MAX / 8; i++) {
		__u32 at = (__u32)i * 8;
		__u64 w;

		if (at >= len)
			break;
		w = hp_w(r, p + at);
		if (len - at < 8)
			w = hp_lowbytes(w, len - at);
		h ^= w;
		h *= 0xFF51AFD7ED558CCDULL;
		h ^= h >> 32;
	}
	h *= 0xC4CEB9FE1A85EC53ULL;
	h ^= h >> 29;
	return h;
}

/* ---- request methods: exactly the set Bun 1.4 accepts, case-sensitive -- */

struct hp_method {
	__u64 lo; /* first 8 bytes, little-endian, zero-padded */
	__u32 hi; /* bytes 8..11 */
	__u8 len;
	__u8 label; /* enum bs_method */
};

static const struct hp_method hp_methods[] = {
	{ 0x0000000000544547ULL, 0x00000000, 3, BS_M_GET },	/* GET */
	{ 0x0000000054534f50ULL, 0x00000000, 4, BS_M_POST },	/* POST */
	{ 0x0000000000545550ULL, 0x00000000, 3, BS_M_PUT },	/* PUT */
	{ 0x0000000044414548ULL, 0x00000000, 4, BS_M_HEAD },	/* HEAD */
	{ 0x00004554454c4544ULL, 0x00000000, 6, BS_M_DELETE },	/* DELETE */
	{ 0x0000004843544150ULL, 0x00000000, 5, BS_M_PATCH },	/* PATCH */
	{ 0x00534e4f4954504fULL, 0x00000000, 7, BS_M_OPTIONS }, /* OPTIONS */
	{ 0x005443454e4e4f43ULL, 0x00000000, 7, BS_M_CONNECT }, /* CONNECT */
	{ 0x0000004543415254ULL, 0x00000000, 5, BS_M_TRACE },	/* TRACE */
	{ 0x0000005952455551ULL, 0x00000000, 5, BS_M_QUERY },	/* QUERY */
	{ 0x00000000004c4341ULL, 0x00000000, 3, BS_M_OTHER },	/* ACL */
	{ 0x00000000444e4942ULL, 0x00000000, 4, BS_M_OTHER },	/* BIND */
	{ 0x54554f4b43454843ULL, 0x00000000, 8, BS_M_OTHER },	/* CHECKOUT */
	{ 0x0000000059504f43ULL, 0x00000000, 4, BS_M_OTHER },	/* COPY */
	{ 0x000000004b4e494cULL, 0x00000000, 4, BS_M_OTHER },	/* LINK */
	{ 0x000000004b434f4cULL, 0x00000000, 4, BS_M_OTHER },	/* LOCK */
	{ 0x4843524145532d4dULL, 0x00000000, 8, BS_M_OTHER },	/* M-SEARCH */
	{ 0x000000454752454dULL, 0x00000000, 5, BS_M_OTHER },	/* MERGE */
	{ 0x4956495443414b4dULL, 0x00005954, 10, BS_M_OTHER },	/* MKACTIVITY */
	{ 0x444e454c41434b4dULL, 0x00005241, 10, BS_M_OTHER },	/* MKCALENDAR */
	{ 0x0000004c4f434b4dULL, 0x00000000, 5, BS_M_OTHER },	/* MKCOL */
	{ 0x0000000045564f4dULL, 0x00000000, 4, BS_M_OTHER },	/* MOVE */
	{ 0x0000594649544f4eULL, 0x00000000, 6, BS_M_OTHER },	/* NOTIFY */
	{ 0x444e4946504f5250ULL, 0x00000000, 8, BS_M_OTHER },	/* PROPFIND */
	{ 0x43544150504f5250ULL, 0x00000048, 9, BS_M_OTHER },	/* PROPPATCH */
	{ 0x0000004547525550ULL, 0x00000000, 5, BS_M_OTHER },	/* PURGE */
	{ 0x0000444e49424552ULL, 0x00000000, 6, BS_M_OTHER },	/* REBIND */
	{ 0x000054524f504552ULL, 0x00000000, 6, BS_M_OTHER },	/* REPORT */
	{ 0x0000484352414553ULL, 0x00000000, 6, BS_M_OTHER },	/* SEARCH */
	{ 0x0000454352554f53ULL, 0x00000000, 6, BS_M_OTHER },	/* SOURCE */
	{ 0x4249524353425553ULL, 0x00000045, 9, BS_M_OTHER },	/* SUBSCRIBE */
	{ 0x0000444e49424e55ULL, 0x00000000, 6, BS_M_OTHER },	/* UNBIND */
	{ 0x00004b4e494c4e55ULL, 0x00000000, 6, BS_M_OTHER },	/* UNLINK */
	{ 0x00004b434f4c4e55ULL, 0x00000000, 6, BS_M_OTHER },	/* UNLOCK */
	{ 0x5243534255534e55ULL, 0x00454249, 11, BS_M_OTHER },	/* UNSUBSCRIBE */
};
#define HP_NMETHODS (sizeof(hp_methods) / sizeof(hp_methods[0]))

/* Label of the method packed in lo/hi, or -1 if Bun does not accept it. */
HP_INLINE int hp_method_lookup(const struct hp_run *r, __u64 lo, __u32 hi, __u32 len)
{
	__u32 label = 0xff;

	for (int i = 0; i < (int)HP_NMETHODS; i++) {
		if (hp_methods[i].lo == lo && hp_methods[i].hi == hi && hp_methods[i].len == len) {
			label = hp_methods[i].label;
			break;
		}
	}
	/* one state after the loop, not one per method */
	label = hp_opaque(r, label);
	return label < BS_M_MAX ? (int)label : -1;
}

/* Lengths of Bun's canned parser-error responses (uWS HttpErrors.h). */
#define HP_CANNED_400 (sizeof("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n") - 1)
#define HP_CANNED_408 (sizeof("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n") - 1)
/* 413 twice: a body over maxRequestBodySize (refused head), a chunk extension too long */
#define HP_CANNED_413 (sizeof("HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n") - 1)
#define HP_CANNED_413E \
	(sizeof("HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\n\r\n") - 1)
#define HP_CANNED_431 \
	(sizeof("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n") - 1)
#define HP_CANNED_505 \
	(sizeof("HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\r\n") - 1)

/* ---- request/response bookkeeping -------------------------------------- */

HP_INLINE struct hp_slot *hp_slot_at(struct hp_conn *c, __u32 i)
{
	return &c->fifo[i & (HP_FIFO - 1)];
}

HP_INLINE int hp_in_body(__u8 state)
{
	return state == HS_BODY || state == HS_CHUNK_SIZE || state == HS_CHUNK_DATA ||
	       state == HS_CHUNK_LAST;
}

/* Give a direction up: its bytes are only counted from now on. */
HP_INLINE void hp_desync(struct hp_run *r, struct hp_dir *d, int reason)
{
	d->state = HS_DEAD;
	hp_on_desync(r, reason);
}

/* Requests awaiting their answers (slots and overflow). */
HP_INLINE int hp_waiting(const struct hp_conn *c)
{
	return c->fifo_len || c->ovf.count;
}

/* The oldest request awaiting its answer. */
HP_INLINE struct hp_slot *hp_oldest(struct hp_conn *c)
{
	return c->fifo_len ? hp_slot_at(c, c->fifo_head) : &c->ovf;
}

/* Is the oldest request awaiting its answer a HEAD? */
HP_INLINE int hp_oldest_is_head(struct hp_conn *c)
{
	if (c->fifo_len)
		return hp_slot_at(c, c->fifo_head)->flags & HP_SF_HEAD;
	return c->ovf.count && (c->ovf_head & 1);
}

/* Take the oldest response-pending request off the queue. */
HP_INLINE void hp_pop(struct hp_conn *c)
{
	struct hp_slot *s;

	if (!c->fifo_len) {
		if (c->ovf.count) {
			c->ovf.count--;
			c->ovf_head >>= 1;
			c->ovf_traced >>= 1;
			c->ovf.seq++;
			c->ovf.flags = (c->ovf_traced & 1) ? HP_SF_TRACED : 0;
		}
		return;
	}
	s = hp_slot_at(c, c->fifo_head);
	s->seq++;
	if (s->count > 1) {
		s->count--;
		return;
	}
	s->count = 0;
	c->fifo_head = (c->fifo_head + 1) & (HP_FIFO - 1);
	c->fifo_len--;
}

/* The response to the oldest pending request has been handed to the kernel. */
HP_INLINE void hp_complete(struct hp_run *r, __u16 status, __u64 resp_body)
{
	struct hp_conn *c = r->c;
	struct hp_slot *s;
	__u64 req_body;

	if (!hp_waiting(c))
		return; /* answer to a request bunscope did not count */
	s = hp_oldest(c);
	req_body = s->req_body;
	if (s->count == 1 && s->seq == c->body_seq && hp_in_body(c->req.state))
		req_body = c->req.body; /* answered before its body ended */
	hp_on_complete(r, s, status, req_body, resp_body);
	hp_pop(c);
}

/*
 * A request head was accepted: the request is pending from now on.  Returns
 * -1 when the connection had to be given up (absurd pipelining) instead.
 */
HP_INLINE int hp_push(struct hp_run *r, struct hp_dir *d, __u8 sflags)
{
	struct hp_conn *c = r->c;
	__u32 seq = c->next_seq++;
	struct hp_slot *s;

	c->body_seq = seq;
	if (c->fifo_len && !c->ovf.count) {
		s = hp_slot_at(c, c->fifo_head + c->fifo_len - 1);
		/* pipelined twins from the same read share a slot */
		if (s->start_ns == r->now && s->path_hash == d->hash && s->method == d->method &&
		    s->flags == sflags && !(sflags & HP_SF_BODY)) {
			if (!(sflags & HP_SF_TRACED) || hp_on_span_start(r, s, seq)) {
				s->count++;
				hp_on_start(r);
				return 0;
			}
			/* sampled but left without a span: not its twin after all */
			sflags &= ~HP_SF_TRACED;
		}
	}
	if (c->fifo_len >= HP_FIFO || c->ovf.count) {
		/* more distinct pipelined requests than slots: keep their
		 * number and order (so totals stay exact), not their routes */
		if (!c->ovf.count) {
			c->ovf.start_ns = r->now;
			c->ovf.route_id = BS_ROUTE_OTHER;
			c->ovf.method = BS_M_OTHER;
			c->ovf.req_body = 0;
			c->ovf_head = 0;
			c->ovf_traced = 0;
			c->ovf.seq = seq;
			c->ovf.flags = 0;
		}
		if ((sflags & HP_SF_HEAD) && c->ovf.count < 64)
			c->ovf_head |= 1ULL << c->ovf.count;
		if ((sflags & HP_SF_TRACED) && c->ovf.count < 64 &&
		    hp_on_span_start(r, &c->ovf, seq))
			c->ovf_traced |= 1ULL << c->ovf.count;
		c->ovf.flags = (c->ovf_traced & 1) ? HP_SF_TRACED : 0;
		c->ovf.count++;
		hp_on_overflow(r);
		hp_on_start(r);
		return 0;
	}
	s = hp_slot_at(c, c->fifo_head + c->fifo_len);
	c->fifo_len++;
	s->start_ns = r->now;
	s->path_hash = d->hash;
	s->req_body = 0;
	s->route_id = d->route;
	s->seq = seq;
	s->count = 1;
	s->method = d->method;
	s->flags = sflags;
	if ((sflags & HP_SF_TRACED) && !hp_on_span_start(r, s, seq))
		s->flags &= ~HP_SF_TRACED;
	if (c->resp.state == HS_RESYNC) {
		/* what was written before is the tail of an older answer */
		c->resp.state = HS_START;
		c->resp.line_len = 0;
		c->resp.carry_len = 0;
		c->resp.dflags &= ~HP_DF_CR;
	}
	hp_on_start(r);
	return 0;
}

/* Every pending request of the connection is lost (close, process exit). */
HP_INLINE void hp_abort_all(struct hp_run *r)
{
	struct hp_conn *c = r->c;

	if (c->ovf.count) {
		/* the span records end them all: the daemon knows which began */
		c->ovf.flags = c->ovf_traced ? HP_SF_TRACED : 0;
		hp_on_abort(r, &c->ovf, c->ovf.count);
		c->ovf.count = 0;
	}

	for (int i = 0; i < HP_FIFO; i++) {
		struct hp_slot *s;

		if (!c->fifo_len)
			break;
		s = hp_slot_at(c, c->fifo_head);
		hp_on_abort(r, s, s->count);
		s->count = 0;
		c->fifo_head = (c->fifo_head + 1) & (HP_FIFO - 1);
		c->fifo_len--;
	}
}

/* The target shut down its sending side: an until-close body has ended. */
HP_INLINE void hp_shutdown_wr(struct hp_run *r)
{
	struct hp_dir *d = &r->c->resp;

	if (d->state == HS_UNTIL_CLOSE) {
		hp_complete(r, d->status, d->body);
		d->state = HS_DEAD;
	}
}

/* The connection is gone. */
HP_INLINE void hp_close(struct hp_run *r)
{
	hp_shutdown_wr(r);
	hp_abort_all(r);
}

HP_INLINE void hp_req_reject(struct hp_run *r, struct hp_dir *d, int reason)
{
	if (d->state == HS_RESYNC)
		return; /* not a request start after all: keep looking */
	d->state = HS_DEAD;
	r->c->cflags |= HP_CF_REJECTED;
	hp_on_reject(r, reason);
}

/* A request message (head and body) has been read completely. */
HP_INLINE void hp_req_done(struct hp_run *r, struct hp_dir *d)
{
	struct hp_conn *c = r->c;

	if (c->fifo_len) {
		struct hp_slot *t = hp_slot_at(c, c->fifo_head + c->fifo_len - 1);

		if (t->seq == c->body_seq && t->count == 1)
			t->req_body = d->body;
	}
	d->state = (d->mflags & HP_RF_UPGRADE) ? HS_HOLD : HS_START;
}

/* A response message has been handed to the kernel completely. */
HP_INLINE void hp_resp_done(struct hp_run *r, struct hp_dir *d)
{
	hp_complete(r, d->status, d->body);
	d->state = HS_START;
	if (r->c->req.state == HS_HOLD)
		r->c->req.state = HS_START;
}

/* ---- line handlers: request side --------------------------------------- */

/* Is scr[s, s + n) equal to the lowercase name packed in lo/hi when folded? */
HP_INLINE int hp_name_is(const struct hp_run *r, __u32 s, __u32 n, __u64 lo, __u64 mid, __u64 hi)
{
	__u64 w0 = hp_w(r, s) | HP_REP(0x20);

	if (n <= 8)
		return (n == 8 ? w0 : hp_lowbytes(w0, n)) == lo;
	if (w0 != lo)
		return 0;
	w0 = hp_w(r, s + 8) | HP_REP(0x20);
	if (n <= 16)
		return (n == 16 ? w0 : hp_lowbytes(w0, n - 8)) == mid;
	if (w0 != mid)
		return 0;
	w0 = hp_w(r, s + 16) | HP_REP(0x20);
	return hp_lowbytes(w0, n - 16) == hi;
}

#define HP_N_HOST     0x74736f68ULL	    /* host */
#define HP_N_UPGRADE  0x65646172677075ULL   /* upgrade */
#define HP_N_CONTENT  0x2d746e65746e6f63ULL /* content- */
#define HP_N_LENGTH   0x6874676e656cULL	    /* length */
#define HP_N_TRANSFER 0x726566736e617274ULL /* transfer */
#define HP_N_ENCODIN  0x6e69646f636e652dULL /* -encodin */
#define HP_N_G	      0x67ULL		    /* g */
#define HP_N_CONNECTI 0x697463656e6e6f63ULL /* connecti */
#define HP_N_ON	      0x6e6fULL		    /* on */
#define HP_N_TRACEPAR 0x7261706563617274ULL /* tracepar */
#define HP_N_ENT      0x746e65ULL	    /* ent */
#define HP_N_TRACESTA 0x6174736563617274ULL /* tracesta */
#define HP_N_TE	      0x6574ULL		    /* te */
#define HP_V_CHUNKED  0x64656b6e756863ULL   /* chunked */
#define HP_V_CLOSE    0x65736f6c63ULL	    /* close */
#define HP_V_HTTP1    0x2e312f5054544820ULL /* " HTTP/1." */
#define HP_V_HTTP11   0x312e312f50545448ULL /* HTTP/1.1 */
#define HP_V_HTTP10   0x302e312f50545448ULL /* HTTP/1.0 */

/*
 * Trim optional whitespace from both ends of [*vs, *ve); 0 if there is more
 * than we look at.  (Each loop's result is made opaque as soon as the loop
 * ends, so the verifier does not follow its 32 exits separately.)
 */
HP_INLINE int hp_trim(const struct hp_run *r, __u32 *vs, __u32 *ve)
{
	__u32 a = *vs, b = *ve;

	for (int i = 0; i < 32; i++) {
		if (a >= b || !hp_ows(hp_b(r, a)))
			break;
		a++;
	}
	a = hp_opaque(r, a);
	if (a < b && hp_ows(hp_b(r, a)))
		return 0;
	for (int i = 0; i < 32; i++) {
		if (b <= a || !hp_ows(hp_b(r, b - 1)))
			break;
		b--;
	}
	b = hp_opaque(r, b);
	if (b > a && hp_ows(hp_b(r, b - 1)))
		return 0;
	*vs = a;
	*ve = b;
	return 1;
}

/* Word i of a line of total bytes at s (zero past its end), for the cache. */
HP_INLINE __u64 hp_rl_word(const struct hp_run *r, __u32 s, __u32 total, __u32 i)
{
	__u32 at = i * 8;
	__u64 w;

	if (at >= total)
		return 0;
	w = hp_w(r, s + at);
	return total - at < 8 ? hp_lowbytes(w, total - at) : w;
}

/* Is the request line at s the one cached for this connection? */
HP_INLINE int hp_rl_hit(const struct hp_run *r, __u32 s, __u32 total)
{
	const struct hp_conn *c = r->c;

	return c->rl_route != BS_ROUTE_UNRESOLVED && total == c->rl_len &&
	       hp_rl_word(r, s, total, 0) == c->rl_w[0] &&
	       hp_rl_word(r, s, total, 1) == c->rl_w[1] &&
	       hp_rl_word(r, s, total, 2) == c->rl_w[2] && hp_rl_word(r, s, total, 3) == c->rl_w[3];
}

/* A request head begins: the request line parsed to method/mflags/hash/route. */
HP_INLINE void hp_req_begin(struct hp_dir *d, __u32 total)
{
	d->state = HS_FIELDS;
	d->dflags |= HP_DF_SEEN;
	d->nfields = 0;
	d->head_len = total + 2;
	d->cl = 0;
	d->cl_len = 0;
	d->body = 0;
	d->remaining = 0;
}

/*
 * Request line: METHOD SP request-target SP "HTTP/1.1" or "HTTP/1.0".
 * scr[s, e) is the line without CRLF; total is its real length (longer than
 * e - s when trunc: then scr[s, HP_WIN_OFF) is its start, scr[HP_WIN_OFF, e)
 * its end).
 */
HP_INLINE void hp_req_start(struct hp_run *r, struct hp_dir *d, __u32 s, __u32 e, __u32 total,
			    int trunc)
{
	__u32 avail = trunc ? HP_WIN_OFF : e; /* contiguous bytes from s */
	__u64 lo = hp_w(r, s), sp;
	__u32 hi = (__u32)hp_w(r, s + 8);
	__u32 mlen, t, pend, plen, tend;
	int label, ptrunc = 0;
	__u8 c0;

	/* the method ends at the first SP within 12 bytes */
	sp = hp_hasless(lo ^ HP_REP(' '), 1);
	if (sp) {
		mlen = hp_lowbyte(sp);
	} else {
		sp = hp_hasless((__u64)hi ^ HP_REP(' '), 1) & 0x80808080ULL;
		if (!sp)
			goto bad_method;
		mlen = 8 + hp_lowbyte(sp);
	}
	mlen = hp_opaque(r, mlen); /* not 12 separate verifier paths */
	if (!mlen || mlen > 11 || s + mlen + 1 >= avail)
		goto bad_method;
	if (mlen < 8) {
		lo = hp_lowbytes(lo, mlen);
		hi = 0;
	} else {
		hi = (__u32)hp_lowbytes(hi, mlen - 8);
	}
	label = hp_method_lookup(r, lo, hi, mlen);
	if (label < 0)
		goto bad_method;

	/* origin-form "/...", authority-form for CONNECT, absolute-form */
	t = s + mlen + 1;
	c0 = hp_b(r, t);
	if (c0 != '/' && label != BS_M_CONNECT) {
		__u64 v = hp_w(r, t) | 0x0000000020202020ULL;

		if (t + 8 >= avail || (hp_lowbytes(v, 7) != 0x2f2f3a70747468ULL /* http:// */ &&
				       v != 0x2f2f3a7370747468ULL /* https:// */)) {
			hp_req_reject(r, d, BS_REJ_TARGET);
			return;
		}
	}

	/* the version: the last 9 bytes of the line */
	if (total < mlen + 11) {
		hp_req_reject(r, d, BS_REJ_VERSION);
		return;
	}
	d->mflags = 0;
	if (!trunc || e >= HP_WIN_OFF + 9) {
		__u8 minor = hp_b(r, e - 1);

		if (hp_w(r, e - 9) != HP_V_HTTP1 || (minor != '1' && minor != '0')) {
			hp_req_reject(r, d, BS_REJ_VERSION);
			return;
		}
		if (minor == '0')
			d->mflags = HP_RF_ANCIENT;
	}

	/* the target must not contain SP or CTL: uWS would see a bad version */
	tend = trunc ? avail : e - 9;
	if (!trunc && hp_find(r, t, tend, ' ', 64) != tend) {
		hp_req_reject(r, d, BS_REJ_VERSION);
		return;
	}
	/* the path is the target up to '?' */
	pend = hp_find(r, t, tend, '?', BS_PATH_MAX / 8 + 1);
	if (pend == tend && trunc)
		ptrunc = 1;
	plen = pend - t;
	if (plen > BS_PATH_MAX) {
		plen = BS_PATH_MAX;
		ptrunc = 1;
	}

	if (label == BS_M_CONNECT)
		d->mflags |= HP_RF_CONNECT;
	d->method = label;
	d->hash = hp_hash(r, t, plen);
	d->route = hp_on_path(r, d->hash, t, plen, ptrunc);
	if (hp_trace_on(r)) {
		hp_on_target(r, t, plen, tend - t, trunc);
		r->c->rl_tr = 0;
	}
	hp_req_begin(d, total);
	if (d->head_len > HP_MAX_HEAD) {
		hp_req_reject(r, d, BS_REJ_TOO_LARGE);
		return;
	}
	/* remember a short line whose route is known, for the next request */
	if (!trunc && total <= 32 && d->route != BS_ROUTE_UNRESOLVED) {
		struct hp_conn *c = r->c;

		c->rl_w[0] = hp_rl_word(r, s, total, 0);
		c->rl_w[1] = hp_rl_word(r, s, total, 1);
		c->rl_w[2] = hp_rl_word(r, s, total, 2);
		c->rl_w[3] = hp_rl_word(r, s, total, 3);
		c->rl_len = (__u8)total;
		c->rl_hash = d->hash;
		c->rl_route = d->route;
		c->rl_method = d->method;
		c->rl_mflags = d->mflags;
		c->rl_tr = hp_trace_on(r) != 0;
	}
	return;

bad_method:
	/* (hp_step already classified a first byte that starts no method) */
	hp_req_reject(r, d, BS_REJ_METHOD);
}

/* Are the first (at most 64) bytes of scr[s, s + n) token characters? */
HP_INLINE int hp_token(const struct hp_run *r, __u32 s, __u32 n)
{
	__u32 ok = 1;

	for (int i = 0; i < 64; i++) {
		if ((__u32)i >= n)
			break;
		ok &= hp_tchar(hp_b(r, s + i));
	}
	return hp_opaque(r, ok);
}

/* Content-Length value: 1..18 digits, at most uWS's STATE_SIZE_MASK. */
HP_INLINE int hp_parse_cl(const struct hp_run *r, __u32 vs, __u32 ve, __u64 *out)
{
	__u64 v = 0;

	if (vs >= ve || ve - vs > 18)
		return -1;
	for (int i = 0; i < 18; i++) {
		__u8 ch;

		if (vs + i >= ve)
			break;
		ch = hp_b(r, vs + i);
		if (ch < '0' || ch > '9')
			return -1;
		v = v * 10 + (ch - '0');
	}
	v = hp_opaque64(r, v);
	if (v > HP_CL_MAX)
		return -1;
	*out = v;
	return 0;
}

/* Is the Transfer-Encoding value exactly the token "chunked" (Bun 1.4)? */
HP_INLINE int hp_te_chunked(const struct hp_run *r, __u32 vs, __u32 ve)
{
	/* trailing empty list elements ("chunked,") are allowed */
	for (int i = 0; i < 32 && ve > vs; i++) {
		__u8 ch = hp_b(r, ve - 1);

		if (ch != ',' && !hp_ows(ch))
			break;
		ve--;
	}
	ve = hp_opaque(r, ve);
	if (ve - vs != 7)
		return 0;
	return hp_lowbytes(hp_w(r, vs) | HP_REP(0x20), 7) == HP_V_CHUNKED;
}

/* End of the request head: decide whether Bun accepts it, then its body. */
HP_INLINE void hp_req_head_end(struct hp_run *r, struct hp_dir *d)
{
	__u8 sflags = 0;

	d->head_len += 2;
	if (d->head_len > HP_MAX_HEAD) {
		hp_req_reject(r, d, BS_REJ_TOO_LARGE);
		return;
	}
	if (!(d->mflags & (HP_RF_ANCIENT | HP_RF_HOST))) {
		hp_req_reject(r, d, BS_REJ_HOST);
		return;
	}
	if ((d->mflags & HP_RF_TE) && (d->mflags & HP_RF_CL)) {
		hp_req_reject(r, d, BS_REJ_TRANSFER_ENCODING);
		return;
	}

	if (d->method == BS_M_HEAD)
		sflags |= HP_SF_HEAD;
	if (d->mflags & HP_RF_UPGRADE)
		sflags |= HP_SF_UPGRADE;
	if ((d->mflags & HP_RF_TE) || d->cl)
		sflags |= HP_SF_BODY;
	if (hp_trace_on(r) && hp_trace_sample(r))
		sflags |= HP_SF_TRACED;
	if (hp_push(r, d, sflags))
		return;

	d->body = 0;
	if (d->mflags & HP_RF_CONNECT) {
		d->state = HS_DEAD; /* a tunnel follows, not HTTP */
	} else if (d->mflags & HP_RF_TE) {
		d->state = HS_CHUNK_SIZE;
		d->dflags &= ~(HP_DF_CHUNK_END | HP_DF_CHUNK_LAST);
	} else if (d->cl) {
		d->state = HS_BODY;
		d->remaining = d->cl;
	} else {
		hp_req_done(r, d);
	}
}

HP_INLINE void hp_req_field(struct hp_run *r, struct hp_dir *d, __u32 s, __u32 e, __u32 total,
			    int trunc)
{
	__u32 avail = trunc ? HP_WIN_OFF : e;
	__u32 colon, nlen, vs, ve;

	if (!total) {
		hp_req_head_end(r, d);
		return;
	}
	d->head_len += total + 2;
	if (d->head_len > HP_MAX_HEAD) {
		hp_req_reject(r, d, BS_REJ_TOO_LARGE);
		return;
	}
	if (++d->nfields > HP_MAX_FIELDS) {
		hp_req_reject(r, d, BS_REJ_TOO_LARGE);
		return;
	}

	/* field-name ":" with no whitespace before the colon */
	colon = hp_find(r, s, avail, ':', 8);
	if (colon >= avail) {
		/* no colon in a short line: uWS answers 400.  Names longer than
		 * we look at are not ones we need; if Bun refuses them, its
		 * canned answer takes the request back (BS_REJ_LATE). */
		if (!trunc && avail - s <= 64)
			hp_req_reject(r, d, BS_REJ_HEADER);
		return;
	}
	nlen = colon - s;
	if (!nlen) {
		hp_req_reject(r, d, BS_REJ_HEADER);
		return;
	}
	if (!hp_token(r, s, nlen)) {
		hp_req_reject(r, d, BS_REJ_HEADER);
		return;
	}
	vs = colon + 1;
	ve = avail;
	if ((nlen == 10 || nlen == 11) && hp_trace_on(r)) {
		if (nlen == 11 ? hp_name_is(r, s, 11, HP_N_TRACEPAR, HP_N_ENT, 0)
			       : hp_name_is(r, s, 10, HP_N_TRACESTA, HP_N_TE, 0)) {
			if (trunc || hp_trim(r, &vs, &ve))
				hp_on_trace_field(r,
						  nlen == 11 ? HP_TF_TRACEPARENT : HP_TF_TRACESTATE,
						  vs, ve, trunc);
		}
		return;
	}
	if (nlen != 4 && nlen != 7 && nlen != 14 && nlen != 17)
		return;

	if (nlen == 4) {
		if (!hp_name_is(r, s, 4, HP_N_HOST, 0, 0))
			return;
		/* a client span names its server by the first Host */
		if (!(d->mflags & HP_RF_HOST) && (r->c->cflags & HP_CF_CLIENT) && hp_trace_on(r) &&
		    (trunc || hp_trim(r, &vs, &ve)))
			hp_on_trace_field(r, HP_TF_HOST, vs, ve, trunc);
		d->mflags |= HP_RF_HOST;
		return;
	}
	if (nlen == 7) {
		if (hp_name_is(r, s, 7, HP_N_UPGRADE, 0, 0))
			d->mflags |= HP_RF_UPGRADE;
		return;
	}
	if (nlen == 14 && hp_name_is(r, s, 14, HP_N_CONTENT, HP_N_LENGTH, 0)) {
		__u64 v;

		if (trunc) {
			hp_desync(r, d, HP_DS_LONG_FIELD);
			return;
		}
		if (!hp_trim(r, &vs, &ve)) {
			hp_desync(r, d, HP_DS_LONG_FIELD);
			return;
		}
		if (hp_parse_cl(r, vs, ve, &v)) {
			hp_req_reject(r, d, BS_REJ_CONTENT_LENGTH);
			return;
		}
		if ((d->mflags & HP_RF_CL) && (v != d->cl || ve - vs != d->cl_len)) {
			hp_req_reject(r, d, BS_REJ_CONTENT_LENGTH);
			return;
		}
		d->mflags |= HP_RF_CL;
		d->cl = v;
		d->cl_len = ve - vs;
		return;
	}
	if (nlen == 17 && hp_name_is(r, s, 17, HP_N_TRANSFER, HP_N_ENCODIN, HP_N_G)) {
		if (trunc) {
			hp_desync(r, d, HP_DS_LONG_FIELD);
			return;
		}
		if (d->mflags & HP_RF_TE) {
			hp_req_reject(r, d, BS_REJ_TRANSFER_ENCODING);
			return;
		}
		if (!hp_trim(r, &vs, &ve)) {
			hp_desync(r, d, HP_DS_LONG_FIELD);
			return;
		}
		if (!hp_te_chunked(r, vs, ve)) {
			hp_req_reject(r, d, BS_REJ_TRANSFER_ENCODING);
			return;
		}
		d->mflags |= HP_RF_TE;
	}
}

/* The value of the hex digit ch, or 16 when ch is not one. */
HP_INLINE __u32 hp_hexval(__u8 ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return 16;
}

/*
 * Chunk-size line of a request, as Bun 1.4 reads it (measured against the
 * binary): one or more hex digits, any number of them leading zeros, for a
 * size of at most HP_CHUNK_MAX; then the end of the line, or ';' and an
 * extension of at most HP_CHUNK_EXT_MAX bytes above 0x20 (hp_step refuses
 * any CTL in the line but its CRLF, so bare LF, CR and tabs never reach
 * here; a space is found here, in the extension's first HP_SCAN_WORDS words).  The CRLF after chunk data, and after the last
 * chunk (Bun takes no trailers), come here as lines that must be empty.
 * Anything else Bun refuses with its canned 400; the request was dispatched.
 */
HP_INLINE void hp_chunk_line_req(struct hp_run *r, struct hp_dir *d, __u32 s, __u32 e, int trunc)
{
	__u32 avail = trunc ? HP_WIN_OFF : e;
	__u32 total = r->v->line_total;
	__u32 i = s;
	__u64 size = 0;

	if (d->dflags & (HP_DF_CHUNK_END | HP_DF_CHUNK_LAST)) {
		int last = d->dflags & HP_DF_CHUNK_LAST;

		d->dflags &= ~(HP_DF_CHUNK_END | HP_DF_CHUNK_LAST);
		if (total) {
			hp_req_reject(r, d, BS_REJ_CHUNKED);
			return;
		}
		if (last)
			hp_req_done(r, d);
		return;
	}
	for (int k = 0; k < HP_CHUNK_ZEROS; k++) {
		if (i + 8 > avail || hp_w(r, i) != HP_REP('0'))
			break;
		i += 8;
	}
	i = hp_opaque(r, i); /* one state after the loop, not one per exit */
	/* at most 7 more zeros, then 15 digits reach HP_CHUNK_MAX */
	for (int k = 0; k < 24; k++) {
		__u32 v;

		if (i >= avail)
			break;
		v = hp_hexval(hp_b(r, i));
		if (v > 15)
			break;
		if (size > (HP_CHUNK_MAX >> 4)) {
			hp_req_reject(r, d, BS_REJ_CHUNKED);
			return;
		}
		size = size * 16 + v;
		i++;
	}
	i = hp_opaque(r, i);
	size = hp_opaque64(r, size);
	if (i >= avail) {
		if (trunc) /* the digits go on past what was kept */
		{
			hp_desync(r, d, HP_DS_LONG_FIELD);
			return;
		}
	} else if (hp_b(r, i) == ';') {
		int sp;

		if (total - (i - s) > HP_CHUNK_EXT_MAX) {
			hp_req_reject(r, d, BS_REJ_CHUNKED);
			return;
		}
		/* no space in the extension (hp_step let it through): looked
		 * for in the first HP_SCAN_WORDS words of what was kept */
		hp_scan_ctl(r, i, avail, &sp, 0x21);
		if (sp) {
			hp_req_reject(r, d, BS_REJ_CHUNKED);
			return;
		}
	} else if (hp_hexval(hp_b(r, i)) < 16) {
		/* only zeros so far, more of them than are skipped */
		hp_desync(r, d, HP_DS_LONG_FIELD);
		return;
	} else {
		hp_req_reject(r, d, BS_REJ_CHUNKED);
		return;
	}
	if (i == s) {
		hp_req_reject(r, d, BS_REJ_CHUNKED);
		return;
	}
	if (!size) {
		d->dflags |= HP_DF_CHUNK_LAST;
		return;
	}
	d->dflags |= HP_DF_CHUNK_END;
	d->state = HS_CHUNK_DATA;
	d->remaining = size;
}

/*
 * Chunk-size line of a response, read leniently (the target's own
 * responses are well formed; an upstream's may use any extension): the
 * bytes > 32 at the start of the line are the size, as uWS reads them, the
 * rest of the line up to LF is ignored; size 0 ends the body after two more
 * bytes (no trailers).  Bytes it cannot read give the stream up.
 */
HP_INLINE void hp_chunk_size(struct hp_run *r, struct hp_dir *d, int dir, __u32 s, __u32 e,
			     int trunc)
{
	__u32 avail = trunc ? HP_WIN_OFF : e;
	__u64 size = 0;
	int bad = 0;

	if (!dir) {
		hp_chunk_line_req(r, d, s, e, trunc);
		return;
	}
	for (int i = 0; i < 24; i++) {
		__u8 ch;
		__u64 digit;

		if (s + i >= avail)
			break;
		ch = hp_b(r, s + i);
		if (ch <= 32)
			break;
		if (ch >= 'a')
			ch -= 'a' - ':';
		else if (ch >= 'A')
			ch -= 'A' - ':';
		digit = (__u64)ch - '0';
		if (digit > 16 || (size & 0x0F00000000000000ULL)) {
			bad = 1;
			break;
		}
		size = size * 16 + digit;
	}
	if (bad) {
		hp_desync(r, d, HP_DS_RESPONSE);
		return;
	}
	if (!size) {
		d->state = HS_CHUNK_LAST;
		d->remaining = 2;
		return;
	}
	d->state = HS_CHUNK_DATA;
	d->remaining = size + 2;
}

/* ---- line handlers: response side -------------------------------------- */

HP_INLINE void hp_resp_head_end(struct hp_run *r, struct hp_dir *d)
{
	struct hp_conn *c = r->c;
	__u16 st = d->status;
	__u32 head = d->head_len + 2;

	/* Bun's parser-error answers: status line + "Connection: close" only */
	if (d->nfields == 1 && (d->mflags & HP_PF_CONNCLOSE) && !(c->cflags & HP_CF_CLIENT) &&
	    ((st == 400 && head == HP_CANNED_400) ||
	     (st == 413 && (head == HP_CANNED_413 || head == HP_CANNED_413E)) ||
	     (st == 431 && head == HP_CANNED_431) || (st == 505 && head == HP_CANNED_505) ||
	     (st == 408 && head == HP_CANNED_408))) {
		d->state = HS_START;
		if (st == 408) {
			hp_on_timeout(r);
			if (hp_waiting(c)) {
				hp_on_abort(r, hp_oldest(c), 1);
				hp_pop(c);
			}
		} else if (hp_waiting(c)) {
			if (c->cflags & HP_CF_REJECTED) {
				/* a body error after the request was dispatched */
				hp_on_abort(r, hp_oldest(c), 1);
			} else {
				/* Bun refused a head bunscope accepted */
				hp_on_unstart(r, hp_oldest(c));
				hp_on_reject(r, BS_REJ_LATE);
			}
			hp_pop(c);
		}
		return;
	}

	d->body = 0;
	if (st == 101) {
		/* Bun switches protocols only for WebSocket upgrades; a 101 to
		 * anything else leaves bytes nobody here can frame */
		__u8 next = HS_DEAD;

		if (hp_waiting(c) && (hp_oldest(c)->flags & HP_SF_UPGRADE) &&
		    !(c->cflags & HP_CF_CLIENT)) {
			hp_on_upgrade(r, hp_oldest(c));
			next = HS_WS;
		}
		hp_complete(r, st, 0);
		c->cflags |= HP_CF_UPGRADED;
		d->state = next;
		c->req.state = next;
		return;
	}
	if (st >= 100 && st < 200) {
		d->state = HS_START; /* interim response */
		return;
	}
	if (st == 204 || st == 304 || hp_oldest_is_head(c)) {
		hp_resp_done(r, d);
		return;
	}
	if (d->mflags & HP_PF_CHUNKED) {
		d->state = HS_CHUNK_SIZE;
	} else if (d->mflags & HP_PF_CL) {
		if (!d->cl) {
			hp_resp_done(r, d);
			return;
		}
		d->state = HS_BODY;
		d->remaining = d->cl;
	} else {
		d->state = HS_UNTIL_CLOSE;
	}
}

HP_INLINE void hp_resp_line(struct hp_run *r, struct hp_dir *d, __u32 s, __u32 e, __u32 total,
			    int trunc)
{
	__u32 avail = trunc ? HP_WIN_OFF : e;

	if (d->state == HS_RESYNC)
		return; /* wait until a request is seen */
	if (d->state == HS_START) {
		__u64 v = hp_w(r, s);
		__u8 d0, d1, d2;

		if (total < 12 || (v != HP_V_HTTP11 && v != HP_V_HTTP10) || hp_b(r, s + 8) != ' ') {
			hp_desync(r, d, HP_DS_RESPONSE);
			return;
		}
		d0 = hp_b(r, s + 9);
		d1 = hp_b(r, s + 10);
		d2 = hp_b(r, s + 11);
		if (d0 < '1' || d0 > '9' || d1 < '0' || d1 > '9' || d2 < '0' || d2 > '9') {
			hp_desync(r, d, HP_DS_RESPONSE);
			return;
		}
		d->status = (d0 - '0') * 100 + (d1 - '0') * 10 + (d2 - '0');
		d->state = HS_FIELDS;
		d->nfields = 0;
		d->mflags = 0;
		d->head_len = total + 2;
		d->cl = 0;
		return;
	}
	/* HS_FIELDS */
	if (!total) {
		hp_resp_head_end(r, d);
		return;
	}
	d->head_len += total + 2;
	d->nfields++;
	{
		__u32 colon = hp_find(r, s, avail, ':', 3);
		__u32 nlen = colon - s, vs = colon + 1, ve = avail;

		if (colon >= avail)
			return;
		if (nlen == 14 && hp_name_is(r, s, 14, HP_N_CONTENT, HP_N_LENGTH, 0)) {
			if (trunc || !hp_trim(r, &vs, &ve) || hp_parse_cl(r, vs, ve, &d->cl)) {
				hp_desync(r, d, HP_DS_RESPONSE);
				return;
			}
			d->mflags |= HP_PF_CL;
		} else if (nlen == 17 &&
			   hp_name_is(r, s, 17, HP_N_TRANSFER, HP_N_ENCODIN, HP_N_G)) {
			if (trunc || !hp_trim(r, &vs, &ve)) {
				hp_desync(r, d, HP_DS_RESPONSE);
				return;
			}
			if (hp_te_chunked(r, vs, ve))
				d->mflags |= HP_PF_CHUNKED;
		} else if (nlen == 10 && hp_name_is(r, s, 10, HP_N_CONNECTI, HP_N_ON, 0)) {
			if (!trunc && hp_trim(r, &vs, &ve) && ve - vs == 5 &&
			    hp_lowbytes(hp_w(r, vs) | HP_REP(0x20), 5) == HP_V_CLOSE)
				d->mflags |= HP_PF_CONNCLOSE;
		}
	}
}

/* ---- the step machine ---------------------------------------------------- */

/* Load the next window of the segment; restore a carried partial line. */
HP_INLINE int hp_window(struct hp_run *r, struct hp_dir *d, __u8 *carry, __u32 cap)
{
	__u32 len = hp_clamp(r, r->v->n - r->v->off, HP_WIN);

	if (hp_src_read(r, r->scr + HP_WIN_OFF, len, r->v->off))
		return -1;
	r->v->wbase = r->v->off;
	r->v->wlen = len;
	r->v->in_line = 0;
	if (d->line_len) {
		__u32 cl = hp_clamp(r, d->carry_len, cap);

		hp_copy(r->scr + ((HP_WIN_OFF - cl) & HP_SCR_MASK), carry, cl);
		r->v->ls = HP_WIN_OFF - cl;
		r->v->lprev = d->line_len - cl;
		r->v->in_line = 1;
	}
	return 0;
}

/* The window ends inside a line: keep its first bytes for the next one. */
HP_INLINE void hp_partial(struct hp_run *r, struct hp_dir *d, int dir, __u8 *carry, __u32 cap,
			  __u32 e, __u8 crflag)
{
	__u32 seg = e - r->v->ls;
	__u32 total = r->v->lprev + seg;
	__u32 keep = hp_clamp(r, seg, cap);

	hp_copy(carry, r->scr + (r->v->ls & HP_SCR_MASK), keep);
	d->carry_len = keep;
	d->line_len = total > 0xffff ? 0xffff : total;
	d->dflags = (d->dflags & ~HP_DF_CR) | crflag;
	r->v->off = r->v->wbase + r->v->wlen;
	if ((d->state == HS_START || d->state == HS_FIELDS) &&
	    (d->state == HS_START ? 0 : d->head_len) + total > HP_MAX_HEAD) {
		if (dir)
			hp_desync(r, d, HP_DS_RESPONSE);
		else
			hp_req_reject(r, d, BS_REJ_TOO_LARGE);
	}
}

/* Handle the complete line described in r->v->line_*. */
HP_INLINE void hp_line_do(struct hp_run *r, struct hp_dir *d, int dir)
{
	__u32 s = r->v->line_s, le = r->v->line_e, total = r->v->line_total;
	int trunc = r->v->line_trunc != 0;

	if (d->state == HS_CHUNK_SIZE) {
		hp_chunk_size(r, d, dir, s, le, trunc);
		return;
	}
	if (dir) {
		hp_resp_line(r, d, s, le, total, trunc);
		return;
	}
	if (d->state == HS_FIELDS) {
		hp_req_field(r, d, s, le, total, trunc);
		return;
	}
	/* HS_START or HS_RESYNC */
	hp_req_start(r, d, s, le, total, trunc);
}

/*
 * Ordinary field lines, handled where they are found (in BPF: no call, and
 * calls are dear).  Returns 1 if the line was accounted for, 0 to leave it to
 * the full handler, which then sees it untouched.  Request fields: a valid
 * token name (not one of the framing names, which the full handler parses)
 * within the limits; response fields: any name but Content-Length,
 * Transfer-Encoding and Connection (Bun writes them, no validation).
 */
HP_INLINE int hp_field_fast(struct hp_run *r, struct hp_dir *d, int dir, __u32 s, __u32 le,
			    __u32 total)
{
	__u32 colon, nlen;

	colon = hp_find(r, s, le, ':', dir ? 3 : 8);
	if (colon >= le)
		return 0;
	nlen = colon - s;
	if (dir) {
		if (nlen == 10 || nlen == 14 || nlen == 17)
			return 0;
		d->head_len += total + 2;
		d->nfields++;
		return 1;
	}
	if (!nlen || nlen == 7 || nlen == 14 || nlen == 17 || nlen > 64 ||
	    ((nlen == 10 || nlen == 11) && hp_trace_on(r)) ||
	    d->head_len + total + 2 > HP_MAX_HEAD || d->nfields >= HP_MAX_FIELDS ||
	    !hp_token(r, s, nlen))
		return 0;
	if (nlen == 4 && hp_name_is(r, s, 4, HP_N_HOST, 0, 0)) {
		/* a client span's Host: the field's slow path hands it over */
		if ((r->c->cflags & HP_CF_CLIENT) && hp_trace_on(r))
			return 0;
		d->mflags |= HP_RF_HOST;
	}
	d->head_len += total + 2;
	d->nfields++;
	return 1;
}

/*
 * A complete line scr[ls, le) ended; the next byte is at scr[next].  The
 * includer may define HP_LINE_CALL(r, d, dir) to run hp_line_do() somewhere
 * else (BPF: in a separately verified function).
 */
HP_INLINE void hp_line(struct hp_run *r, struct hp_dir *d, int dir, __u32 le, __u32 next)
{
	__u32 s = r->v->ls;

	r->v->line_s = s;
	r->v->line_e = le;
	r->v->line_total = r->v->lprev + (le - s);
	r->v->line_trunc = r->v->lprev != 0;
	d->line_len = 0;
	d->carry_len = 0;
	d->dflags &= ~HP_DF_CR;
	r->v->off = r->v->wbase + (next - HP_WIN_OFF);
	r->v->in_line = 0;
	if (!HP_NO_FAST && !dir && d->state == HS_START && !r->v->line_trunc &&
	    hp_rl_hit(r, s, r->v->line_total) && (r->c->rl_tr || !hp_trace_on(r))) {
		/* the same request line as last time on this connection */
		d->method = r->c->rl_method;
		d->mflags = r->c->rl_mflags;
		d->hash = r->c->rl_hash;
		d->route = r->c->rl_route;
		if (r->c->rl_tr)
			hp_on_target_again(r);
		hp_req_begin(d, r->v->line_total);
		return;
	}
	if (!HP_NO_FAST && d->state == HS_FIELDS && !r->v->line_trunc) {
		if (le > s) {
			if (hp_field_fast(r, d, dir, s, le, r->v->line_total))
				return;
		} else if (!r->v->line_total) {
			/* the end of a head, once per message each way */
			if (dir)
				hp_resp_head_end(r, d);
			else
				hp_req_head_end(r, d);
			return;
		}
	}
#ifdef HP_LINE_CALL
	HP_LINE_CALL(r, d, dir);
#else
	hp_line_do(r, d, dir);
#endif
}

/* A byte that does not belong in the line (bare LF, CTL, CR without LF). */
HP_INLINE int hp_bad_byte(struct hp_run *r, struct hp_dir *d, int dir)
{
	if (dir)
		hp_desync(r, d, HP_DS_RESPONSE);
	else if (d->state == HS_START)
		hp_req_reject(r, d, BS_REJ_VERSION); /* uWS: 505 */
	else if (d->state == HS_CHUNK_SIZE)
		hp_req_reject(r, d, BS_REJ_CHUNKED);
	else
		hp_req_reject(r, d, BS_REJ_HEADER);
	r->v->off = r->v->n;
	return 1;
}

/* The first byte of a request cannot start any method Bun accepts. */
HP_INLINE int hp_reject_first(struct hp_run *r, struct hp_dir *d, __u8 ch)
{
	int reason = BS_REJ_METHOD;

	if (!(d->dflags & HP_DF_SEEN)) {
		if (ch == 0x16)
			reason = BS_REJ_TLS;
		else if (!((ch >= 'a' && ch <= 'z') || ch == '-'))
			reason = BS_REJ_GARBAGE;
	}
	hp_req_reject(r, d, reason);
	r->v->off = r->v->n;
	return 1;
}

/* A byte that is part of the line but ends no scan (tab, junk in a chunk
 * line): continue after it, carrying the line if the window ends there. */
HP_INLINE int hp_skip_byte(struct hp_run *r, struct hp_dir *d, int dir, __u8 *carry, __u32 cap,
			   __u32 q, __u32 e)
{
	r->v->off = r->v->wbase + (q + 1 - HP_WIN_OFF);
	if (q + 1 >= e)
		hp_partial(r, d, dir, carry, cap, e, 0);
	return 0;
}

/*
 * One step over the segment in direction dir (0 = request bytes the target
 * read, 1 = response bytes it wrote).  Returns 1 when the segment is done.
 */
HP_INLINE int hp_step(struct hp_run *r, const int dir)
{
	struct hp_dir *d = dir ? &r->c->resp : &r->c->req;
	__u8 *carry = dir ? r->c->resp_carry : r->c->req_carry;
	const __u32 cap = dir ? HP_CARRY_RESP : HP_CARRY_REQ;
	__u32 p, e, q;
	int found, lax;
	__u8 ch;

	if (r->v->off >= r->v->n)
		return 1;

	switch (d->state) {
	case HS_BODY:
	case HS_CHUNK_DATA:
	case HS_CHUNK_LAST: {
		__u64 avail = r->v->n - r->v->off;
		__u64 before = d->remaining;
		__u64 k = before < avail ? before : avail;

		r->v->off += (__u32)k;
		d->remaining -= k;
		if (d->state == HS_BODY) {
			d->body += k;
		} else if (d->state == HS_CHUNK_DATA && !dir) {
			d->body += k; /* its CRLF is read as a line */
		} else if (d->state == HS_CHUNK_DATA) {
			__u64 db = before > 2 ? before - 2 : 0;
			__u64 da = d->remaining > 2 ? d->remaining - 2 : 0;

			d->body += db - da;
		}
		if (d->remaining)
			return 0;
		if (d->state == HS_CHUNK_DATA)
			d->state = HS_CHUNK_SIZE;
		else if (dir)
			hp_resp_done(r, d);
		else
			hp_req_done(r, d);
		return 0;
	}
	case HS_START:
	case HS_FIELDS:
	case HS_CHUNK_SIZE:
	case HS_RESYNC:
		break;
	case HS_WS:
		return 1; /* not HTTP any more: the caller walks the frames */
	case HS_HOLD:
		if (!dir)
			hp_desync(r, d, HP_DS_HOLD);
		r->v->off = r->v->n;
		return 1;
	default: /* HS_UNTIL_CLOSE, HS_DEAD */
		if (d->state == HS_UNTIL_CLOSE)
			d->body += r->v->n - r->v->off;
		r->v->off = r->v->n;
		return 1;
	}

	/* lines where stray bytes are skipped: resync, a response's chunk line */
	lax = d->state == HS_RESYNC || (dir && d->state == HS_CHUNK_SIZE);
	if (!r->v->readable) {
		hp_desync(r, d, HP_DS_UNREADABLE);
		r->v->off = r->v->n;
		return 1;
	}
	if (!r->v->wlen || r->v->off >= r->v->wbase + r->v->wlen) {
		if (hp_window(r, d, carry, cap)) {
			hp_desync(r, d, HP_DS_READ);
			r->v->off = r->v->n;
			return 1;
		}
	}
	p = HP_WIN_OFF + (r->v->off - r->v->wbase);
	e = HP_WIN_OFF + r->v->wlen;
	if (!r->v->in_line) {
		r->v->ls = p;
		r->v->lprev = 0;
		r->v->in_line = 1;
		if (!dir && d->state == HS_START) {
			/* uWS rejects at the first byte that cannot start a method */
			ch = hp_b(r, p);
			if (!((ch >= 'A' && ch <= 'Z') || ch == '-'))
				return hp_reject_first(r, d, ch);
		}
	}

	if (d->dflags & HP_DF_CR) {
		/* the previous window ended in CR */
		d->dflags &= ~HP_DF_CR;
		if (hp_b(r, p) == '\n') {
			hp_line(r, d, dir, p - 1, p + 1);
			return 0;
		}
		if (!lax)
			return hp_bad_byte(r, d, dir);
	}

	/* a request's chunk line: a CTL but its CRLF is refused (hp_bad_byte);
	 * a space is the line handler's to find.  One inlined scan here: each
	 * copy costs the verifier once per step of every step function */
	q = hp_scan_ctl(r, p, e, &found, 0x20);
	if (!found) {
		r->v->off = r->v->wbase + (q - HP_WIN_OFF);
		if (q >= e)
			hp_partial(r, d, dir, carry, cap, e, 0);
		return 0;
	}
	ch = hp_b(r, q);
	if (ch == '\r') {
		if (q + 1 >= e) {
			hp_partial(r, d, dir, carry, cap, e, HP_DF_CR);
			return 0;
		}
		if (hp_b(r, q + 1) == '\n') {
			hp_line(r, d, dir, q, q + 2);
			return 0;
		}
	} else if (ch == '\n' && lax) {
		hp_line(r, d, dir, q, q + 1);
		return 0;
	} else if (ch == '\t' && (dir || (d->state != HS_START && d->state != HS_CHUNK_SIZE))) {
		return hp_skip_byte(r, d, dir, carry, cap, q, e);
	}
	if (lax)
		return hp_skip_byte(r, d, dir, carry, cap, q, e);
	return hp_bad_byte(r, d, dir);
}

HP_INLINE int hp_step_req(struct hp_run *r)
{
	return hp_step(r, 0);
}

HP_INLINE int hp_step_resp(struct hp_run *r)
{
	return hp_step(r, 1);
}

/* Prepare r to process a segment of n bytes at src. */
HP_INLINE void hp_run_segment(struct hp_run *r, __u64 src, __u32 n, int readable)
{
	r->v->src = src;
	r->v->n = n;
	r->v->off = 0;
	r->v->wbase = 0;
	r->v->wlen = 0;
	r->v->ls = HP_WIN_OFF;
	r->v->lprev = 0;
	r->v->in_line = 0;
	r->v->ws_win = 0;
	r->v->readable = readable;
}

#endif /* !HP_TYPES_ONLY */
#endif /* BUNSCOPE_HTTP_PARSE_H */
