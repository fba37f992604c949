// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fuzz_traceparent: tp_parse (include/traceparent.h), which the BPF programs
 * run on every traceparent a request carries.  The input is the header
 * value, as hp_on_trace_field hands it over (trimmed, any bytes).
 *
 * Invariants: a value it accepts is what W3C Trace Context allows (lowercase
 * hex fields in their places, version not ff, exactly 55 bytes for version
 * 00 and a '-' after them for a longer value of a higher version, ids not
 * all zero), and the ids and flags it returns are those hex digits.
 */
#include <linux/types.h>

#include "fuzz.h"
#include "traceparent.h"

static int lowhex(__u8 c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* the byte at v[at] in hex, as the value spells it */
static void put_hex(char *out, __u8 b)
{
	static const char digits[] = "0123456789abcdef";

	out[0] = digits[b >> 4];
	out[1] = digits[b & 15];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	__u8 *v = fz_dup(data, size);
	struct bs_tp tp;
	char again[TP_LEN];
	int zero_t = 1, zero_p = 1;

	memset(&tp, 0x5a, sizeof(tp));
	if (tp_parse(v, (__u32)size, &tp)) {
		free(v);
		return 0;
	}
	FZ_CHECK(size >= TP_LEN);
	FZ_CHECK(v[2] == '-' && v[35] == '-' && v[52] == '-');
	for (int i = 0; i < TP_LEN; i++)
		if (i != 2 && i != 35 && i != 52)
			FZ_CHECK(lowhex(v[i]));
	FZ_CHECK(tp.version != 0xff);
	FZ_CHECK(tp.version ? size == TP_LEN || v[TP_LEN] == '-' : size == TP_LEN);
	/* write the value out again from what was parsed */
	put_hex(again, tp.version);
	again[2] = '-';
	for (int i = 0; i < 16; i++) {
		put_hex(again + 3 + 2 * i, tp.trace_id[i]);
		zero_t &= !tp.trace_id[i];
	}
	again[35] = '-';
	for (int i = 0; i < 8; i++) {
		put_hex(again + 36 + 2 * i, tp.parent_id[i]);
		zero_p &= !tp.parent_id[i];
	}
	again[52] = '-';
	put_hex(again + 53, tp.flags);
	FZ_CHECK(!memcmp(again, v, TP_LEN));
	FZ_CHECK(!zero_t && !zero_p);
	free(v);
	return 0;
}
