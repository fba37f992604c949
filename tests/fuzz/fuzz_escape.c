// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fuzz_escape: the escaping that copies captured bytes (paths, methods,
 * targets, tracestate, peer names) into Prometheus label values, HELP text
 * and JSON strings (user/expo.c).  The input is the bytes.
 *
 * Invariants: the output is valid UTF-8; a label value holds no raw newline
 * or quote, a JSON string no control byte and no unescaped quote; and
 * undoing the escapes gives back the input with every byte that is not part
 * of a valid UTF-8 sequence (RFC 3629) replaced by U+FFFD, as decoded here
 * from the code points' ranges.
 */
#include "fuzz.h"
#include "expo.h"

#define REPL "\xef\xbf\xbd"

/*
 * The code point at p (n bytes left) if a valid UTF-8 sequence starts there:
 * its length, else 0.  Decodes, then refuses overlong forms, surrogates and
 * values above U+10FFFF.
 */
static size_t decode(const unsigned char *p, size_t n)
{
	static const unsigned int min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len = p[0] < 0x80	 ? 1
		     : (p[0] >> 5) == 6	 ? 2
		     : (p[0] >> 4) == 14 ? 3
		     : (p[0] >> 3) == 30 ? 4
					 : 0;
	unsigned int cp;

	if (!len || len > n)
		return 0;
	cp = len == 1 ? p[0] : p[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* the input with invalid bytes replaced: what unescaping must give back */
static void expected(struct sbuf *sb, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = decode(p + i, n - i);

		if (k) {
			sbuf_put(sb, (const char *)p + i, k);
			i += k;
		} else {
			sbuf_puts(sb, REPL);
			i++;
		}
	}
}

static void check_utf8(const struct sbuf *sb)
{
	for (size_t i = 0; i < sb->len;) {
		size_t k = decode((const unsigned char *)sb->buf + i, sb->len - i);

		FZ_CHECK(k);
		i += k;
	}
}

static int hexv(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* undo one mode's escapes of s[0..n) into out; json: \uXXXX instead of \n */
static void unescape(struct sbuf *out, const char *s, size_t n, int json)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		FZ_CHECK(c != '"'); /* quotes come escaped */
		if (json)
			FZ_CHECK((unsigned char)c >= 0x20);
		else
			FZ_CHECK(c != '\n');
		if (c != '\\') {
			sbuf_put(out, &c, 1);
			continue;
		}
		FZ_CHECK(i + 1 < n);
		c = s[++i];
		if (c == '\\' || c == '"') {
			sbuf_put(out, &c, 1);
		} else if (!json && c == 'n') {
			sbuf_put(out, "\n", 1);
		} else {
			FZ_CHECK(json && c == 'u' && i + 4 < n);
			FZ_CHECK(s[i + 1] == '0' && s[i + 2] == '0');
			FZ_CHECK(hexv(s[i + 3]) >= 0 && hexv(s[i + 4]) >= 0);
			c = (char)(hexv(s[i + 3]) << 4 | hexv(s[i + 4]));
			FZ_CHECK((unsigned char)c < 0x20);
			sbuf_put(out, &c, 1);
			i += 4;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = (char *)fz_dup(data, size);
	struct sbuf want, label, json, back;

	sbuf_init(&want);
	sbuf_init(&label);
	sbuf_init(&json);
	sbuf_init(&back);
	expected(&want, data, size);

	expo_label_value(&label, in, size);
	FZ_CHECK(!label.oom);
	check_utf8(&label);
	unescape(&back, label.buf ? label.buf : "", label.len, 0);
	FZ_CHECK(back.len == want.len &&
		 !memcmp(back.buf ? back.buf : "", want.buf ? want.buf : "", want.len));

	json_string(&json, in, size);
	FZ_CHECK(!json.oom && json.len >= 2);
	FZ_CHECK(json.buf[0] == '"' && json.buf[json.len - 1] == '"');
	check_utf8(&json);
	sbuf_reset(&back);
	unescape(&back, json.buf + 1, json.len - 2, 1);
	FZ_CHECK(back.len == want.len &&
		 !memcmp(back.buf ? back.buf : "", want.buf ? want.buf : "", want.len));

	sbuf_free(&want);
	sbuf_free(&label);
	sbuf_free(&json);
	sbuf_free(&back);
	free(in);
	return 0;
}
