// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for user/traces_cfg.c: traces_resolve() combining the trace
 * flags with the OTEL_* environment.  Each test hands it a fake
 * environment (a table of name/value pairs), so the process's own
 * environment never leaks in.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../user/traces.h" /* with bunscope.h: enum bs_sampler */

#define ALL    (1ULL << 32) /* ratio: every trace */
#define NO_ENV ((const struct env_var[]){ { NULL, NULL } })

/* ---- the fake environment ----------------------------------------------- */

struct env_var {
	const char *name;
	const char *value;
};

static const struct env_var *cur_env;

static const char *fake_env(const char *name)
{
	for (const struct env_var *e = cur_env; e && e->name; e++)
		if (!strcmp(e->name, name))
			return e->value;
	return NULL;
}

static char err[256];

/* traces_resolve() with env as the environment; err is cleared first. */
static int resolve(const struct traces_opts *o, const struct env_var *env, struct traces_setup *ts)
{
	memset(err, 0, sizeof(err));
	cur_env = env;
	return traces_resolve(o, fake_env, ts, err, sizeof(err));
}

/* What main() starts from: nothing given, --traces-max-rate unset. */
static struct traces_opts opts(void)
{
	return (struct traces_opts){ .max_rate = -1 };
}

/* with an exporter: the sampler settings only count when traces are on */
static struct traces_opts opts_on(void)
{
	struct traces_opts o = opts();

	o.console = true;
	return o;
}

/* Resolve with just an --otlp-endpoint flag and env; the resulting URL. */
static const char *otlp_url(const char *flag, const struct env_var *env, struct traces_setup *ts)
{
	struct traces_opts o = opts();

	o.otlp_endpoint = flag;
	assert_int_equal(resolve(&o, env, ts), 0);
	return ts->tracer.otlp_url;
}

/* ---- exporters: on or off ------------------------------------------------ */

static void test_no_exporter(void **state)
{
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_false(ts.on);
	assert_null(ts.tracer.otlp_url);
	assert_null(ts.tracer.zipkin_url);
	assert_null(ts.tracer.file_path);
	assert_false(ts.tracer.console);
	assert_null(ts.tracer.otlp_headers);
	assert_null(ts.collector.service);
	assert_string_equal(ts.otlp_url, "");
}

static void test_each_exporter_turns_on(void **state)
{
	struct traces_setup ts;
	struct traces_opts o;

	(void)state;
	o = opts();
	o.otlp_endpoint = "http://c:4318";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_true(ts.on);
	assert_non_null(ts.tracer.otlp_url);
	assert_ptr_equal(ts.tracer.otlp_url, ts.otlp_url);

	o = opts();
	o.zipkin_url = "http://z:9411/api/v2/spans";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_true(ts.on);
	assert_null(ts.tracer.otlp_url);
	assert_string_equal(ts.tracer.zipkin_url, "http://z:9411/api/v2/spans");

	o = opts();
	o.file = "/tmp/spans.jsonl";
	o.file_max = 1 << 20;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_true(ts.on);
	assert_string_equal(ts.tracer.file_path, "/tmp/spans.jsonl");
	assert_int_equal(ts.tracer.file_max_bytes, 1 << 20);

	o = opts();
	o.console = true;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_true(ts.on);
	assert_true(ts.tracer.console);

	/* the OTLP environment alone turns it on too */
	o = opts();
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_true(ts.on);
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){ { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
							     "http://c:4318/v1/traces" },
							   { NULL, NULL } },
				 &ts),
			 0);
	assert_true(ts.on);
}

static void test_passthrough(void **state)
{
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.console = true;
	o.query = true;
	o.queue = 123;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_true(ts.query);
	assert_int_equal(ts.tracer.queue_max, 123);

	o = opts();
	o.console = true;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_false(ts.query);
	assert_int_equal(ts.tracer.queue_max, 0); /* export.c's default */
}

static void test_zipkin_bad_url(void **state)
{
	static const char *const bad[] = { "z:9411", "grpc://z", "http://", "https://" };
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.zipkin_url = bad[i];
		assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
		assert_non_null(strstr(err, "http"));
		assert_non_null(strstr(err, bad[i]));
	}
	o.zipkin_url = "https://z/api/v2/spans";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
}

/* ---- OTLP URL --------------------------------------------------------------- */

static void test_otlp_flag_base(void **state)
{
	struct traces_setup ts;

	(void)state;
	assert_string_equal(otlp_url("http://c:4318", NO_ENV, &ts), "http://c:4318/v1/traces");
	assert_string_equal(otlp_url("http://c:4318/", NO_ENV, &ts), "http://c:4318/v1/traces");
	assert_string_equal(otlp_url("http://c:4318///", NO_ENV, &ts), "http://c:4318/v1/traces");
	assert_string_equal(otlp_url("https://c/otlp", NO_ENV, &ts), "https://c/otlp/v1/traces");
	/* already the traces URL: kept (less its trailing slashes) */
	assert_string_equal(otlp_url("http://c:4318/v1/traces", NO_ENV, &ts),
			    "http://c:4318/v1/traces");
	assert_string_equal(otlp_url("http://c:4318/v1/traces/", NO_ENV, &ts),
			    "http://c:4318/v1/traces");
	assert_string_equal(otlp_url("https://c/p/v1/traces", NO_ENV, &ts),
			    "https://c/p/v1/traces");
}

static void test_otlp_env(void **state)
{
	static const struct env_var base[] = {
		{ "OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/" },
		{ NULL, NULL },
	};
	static const struct env_var traces[] = {
		{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom" },
		{ NULL, NULL },
	};
	static const struct env_var both[] = {
		{ "OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318" },
		{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom/" },
		{ NULL, NULL },
	};
	struct traces_setup ts;

	(void)state;
	/* the base URL gets /v1/traces */
	assert_string_equal(otlp_url(NULL, base, &ts), "http://base:4318/v1/traces");
	/* the signal's own URL is used as it is */
	assert_string_equal(otlp_url(NULL, traces, &ts), "http://t:4318/custom");
	assert_string_equal(otlp_url(NULL, both, &ts), "http://t:4318/custom/");
	/* the flag wins over both */
	assert_string_equal(otlp_url("http://flag:1", both, &ts), "http://flag:1/v1/traces");
	assert_string_equal(otlp_url("http://flag:1", base, &ts), "http://flag:1/v1/traces");
	assert_string_equal(otlp_url("http://flag:1", traces, &ts), "http://flag:1/v1/traces");
}

static void test_otlp_not_http(void **state)
{
	static const char *const bad[] = {
		"grpc://x", "localhost:4317", "x", "ftp://c/", "http://", "https:///",
	};
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.otlp_endpoint = bad[i];
		assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
		assert_non_null(strstr(err, "http"));
	}
	/* from either variable too */
	o = opts();
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317" },
					 { NULL, NULL } },
				 &ts),
			 -EINVAL);
	assert_non_null(strstr(err, "http"));
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://x" },
					 { NULL, NULL } },
				 &ts),
			 -EINVAL);
	assert_non_null(strstr(err, "http"));
	assert_non_null(strstr(err, "grpc://x"));
	/* a bad variable does not matter when the flag is given */
	o.otlp_endpoint = "http://c:4318";
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://x" },
					 { "OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://y" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_string_equal(ts.otlp_url, "http://c:4318/v1/traces");
}

/* An endpoint longer than the URL buffer is refused, not cut. */
static void test_otlp_url_too_long(void **state)
{
	static char url[1200];
	struct traces_opts o = opts();
	struct traces_setup ts;
	int rc;

	(void)state;
	memset(url, 'a', sizeof(url) - 1);
	memcpy(url, "http://c/", 9);
	o.otlp_endpoint = url;
	rc = resolve(&o, NO_ENV, &ts);
	assert_int_equal(rc, -EINVAL);
}

/* ---- headers and compression ---------------------------------------------- */

static void test_headers(void **state)
{
	static const struct env_var both[] = {
		{ "OTEL_EXPORTER_OTLP_HEADERS", "a=1" },
		{ "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2" },
		{ NULL, NULL },
	};
	static const struct env_var generic[] = {
		{ "OTEL_EXPORTER_OTLP_HEADERS", "a=1" },
		{ NULL, NULL },
	};
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.console = true;
	assert_int_equal(resolve(&o, both, &ts), 0);
	assert_string_equal(ts.tracer.otlp_headers, "b=2");
	assert_int_equal(resolve(&o, generic, &ts), 0);
	assert_string_equal(ts.tracer.otlp_headers, "a=1");
	o.otlp_headers = "c=3";
	assert_int_equal(resolve(&o, both, &ts), 0);
	assert_string_equal(ts.tracer.otlp_headers, "c=3");
}

static void test_compression(void **state)
{
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.otlp_endpoint = "http://c:4318";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_true(ts.tracer.otlp_gzip);

	o.compression = "none";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_false(ts.tracer.otlp_gzip);
	o.compression = "gzip";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_true(ts.tracer.otlp_gzip);

	/* the environment, the signal's own variable first; the flag wins */
	o.compression = NULL;
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_COMPRESSION", "none" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_false(ts.tracer.otlp_gzip);
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_false(ts.tracer.otlp_gzip);
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_COMPRESSION", "none" },
					 { "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_true(ts.tracer.otlp_gzip);
	o.compression = "gzip";
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_COMPRESSION", "none" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_true(ts.tracer.otlp_gzip);

	/* bad values */
	o.compression = "deflate";
	assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
	assert_non_null(strstr(err, "deflate"));
	o.compression = "";
	assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
	o.compression = NULL;
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd" },
					 { NULL, NULL } },
				 &ts),
			 -EINVAL);
	assert_non_null(strstr(err, "zstd"));
}

/* ---- samplers ------------------------------------------------------------------ */

static void test_sampler_default(void **state)
{
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.console = true;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_PB_ALWAYS_ON);
	assert_int_equal(ts.ratio, ALL);
	assert_string_equal(ts.sampler_desc, "parentbased_always_on");

	/* OTEL_TRACES_SAMPLER_ARG alone means nothing to a non-ratio sampler */
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){ { "OTEL_TRACES_SAMPLER_ARG", "garbage" },
							   { NULL, NULL } },
				 &ts),
			 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_PB_ALWAYS_ON);
	assert_int_equal(ts.ratio, ALL);
}

static const struct {
	const char *name;
	__u32 id;
	bool ratio;
} sampler_names[] = {
	{ "always_on", BS_SAMPLER_ALWAYS_ON, false },
	{ "always_off", BS_SAMPLER_ALWAYS_OFF, false },
	{ "traceidratio", BS_SAMPLER_RATIO, true },
	{ "parentbased_always_on", BS_SAMPLER_PB_ALWAYS_ON, false },
	{ "parentbased_always_off", BS_SAMPLER_PB_ALWAYS_OFF, false },
	{ "parentbased_traceidratio", BS_SAMPLER_PB_RATIO, true },
};

static void test_sampler_names(void **state)
{
	struct env_var env[] = { { "OTEL_TRACES_SAMPLER", NULL }, { NULL, NULL } };
	struct traces_setup ts;
	struct traces_opts o;
	char desc[96];

	(void)state;
	for (size_t i = 0; i < sizeof(sampler_names) / sizeof(sampler_names[0]); i++) {
		if (sampler_names[i].ratio)
			snprintf(desc, sizeof(desc), "%s 1", sampler_names[i].name);
		else
			snprintf(desc, sizeof(desc), "%s", sampler_names[i].name);

		/* from the environment */
		o = opts_on();
		env[0].value = sampler_names[i].name;
		assert_int_equal(resolve(&o, env, &ts), 0);
		assert_int_equal(ts.sampler, sampler_names[i].id);
		assert_int_equal(ts.ratio, ALL);
		assert_string_equal(ts.sampler_desc, desc);

		/* from --traces-sampler, which wins over the environment */
		o.sampler = sampler_names[i].name;
		env[0].value = "always_off";
		assert_int_equal(resolve(&o, env, &ts), 0);
		assert_int_equal(ts.sampler, sampler_names[i].id);
		assert_string_equal(ts.sampler_desc, desc);
	}
}

static void test_sampler_ratio_env(void **state)
{
	struct traces_opts o = opts_on();
	struct traces_setup ts;

	(void)state;
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_TRACES_SAMPLER", "traceidratio" },
					 { "OTEL_TRACES_SAMPLER_ARG", "0.25" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_RATIO);
	assert_int_equal(ts.ratio, 1ULL << 30);
	assert_string_equal(ts.sampler_desc, "traceidratio 0.25");

	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_TRACES_SAMPLER", "parentbased_traceidratio" },
					 { "OTEL_TRACES_SAMPLER_ARG", "0" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_PB_RATIO);
	assert_int_equal(ts.ratio, 0);
	assert_string_equal(ts.sampler_desc, "parentbased_traceidratio 0");

	assert_int_equal(resolve(&o,
				 (const struct env_var[]){
					 { "OTEL_TRACES_SAMPLER", "traceidratio" },
					 { "OTEL_TRACES_SAMPLER_ARG", "1" },
					 { NULL, NULL } },
				 &ts),
			 0);
	assert_int_equal(ts.ratio, ALL);

	/* the flag's sampler with the environment's ratio */
	o.sampler = "traceidratio";
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){ { "OTEL_TRACES_SAMPLER_ARG", "0.5" },
							   { NULL, NULL } },
				 &ts),
			 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_RATIO);
	assert_int_equal(ts.ratio, 1ULL << 31);
}

static void test_sample_flag(void **state)
{
	static const char *const no_ratio[] = {
		"always_on",
		"always_off",
		"parentbased_always_on",
		"parentbased_always_off",
	};
	struct traces_opts o = opts_on();
	struct traces_setup ts;

	(void)state;
	/* --traces-sample alone: parent-based with that ratio */
	o.ratio = "0.1";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_PB_RATIO);
	assert_int_equal(ts.ratio, (__u64)llround(0.1 * 4294967296.0));
	assert_int_equal(ts.ratio, 429496730);
	assert_string_equal(ts.sampler_desc, "parentbased_traceidratio 0.1");

	/* it wins over OTEL_TRACES_SAMPLER_ARG, and OTEL_TRACES_SAMPLER is not read */
	assert_int_equal(resolve(&o,
				 (const struct env_var[]){ { "OTEL_TRACES_SAMPLER", "always_on" },
							   { "OTEL_TRACES_SAMPLER_ARG", "0.9" },
							   { NULL, NULL } },
				 &ts),
			 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_PB_RATIO);
	assert_int_equal(ts.ratio, 429496730);

	/* with a ratio sampler flag */
	o.sampler = "traceidratio";
	o.ratio = "0.25";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.sampler, BS_SAMPLER_RATIO);
	assert_int_equal(ts.ratio, 1ULL << 30);
	assert_string_equal(ts.sampler_desc, "traceidratio 0.25");

	/* with a sampler that takes no ratio */
	for (size_t i = 0; i < sizeof(no_ratio) / sizeof(no_ratio[0]); i++) {
		o.sampler = no_ratio[i];
		assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
		assert_non_null(strstr(err, no_ratio[i]));
	}
}

static void test_ratio_bad(void **state)
{
	static const char *const bad[] = {
		"1.5", "-0.1", "2", "abc", "0.5x", "", "nan", "inf", "-inf", "1e3", "0.5 ",
	};
	struct env_var env[] = {
		{ "OTEL_TRACES_SAMPLER", "traceidratio" },
		{ "OTEL_TRACES_SAMPLER_ARG", NULL },
		{ NULL, NULL },
	};
	struct traces_opts o;
	struct traces_setup ts;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = opts_on();
		o.ratio = bad[i];
		assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
		assert_non_null(strstr(err, "ratio"));

		/* the same through the environment ("" there is unset: ratio 1) */
		o = opts_on();
		env[1].value = bad[i];
		if (!*bad[i]) {
			assert_int_equal(resolve(&o, env, &ts), 0);
			assert_int_equal(ts.ratio, ALL);
			continue;
		}
		assert_int_equal(resolve(&o, env, &ts), -EINVAL);
		assert_non_null(strstr(err, bad[i]));
	}
}

static void test_sampler_unknown(void **state)
{
	static const char *const bad[] = {
		"xray", "jaeger_remote", "AlwaysOn", "ALWAYS_ON", "always_on ", "ratio",
	};
	struct env_var env[] = { { "OTEL_TRACES_SAMPLER", NULL }, { NULL, NULL } };
	struct traces_opts o;
	struct traces_setup ts;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = opts_on();
		o.sampler = bad[i];
		assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
		assert_non_null(strstr(err, bad[i]));
		assert_non_null(strstr(err, "parentbased_traceidratio"));

		o = opts_on();
		env[0].value = bad[i];
		assert_int_equal(resolve(&o, env, &ts), -EINVAL);
		assert_non_null(strstr(err, bad[i]));
	}
	/* an empty flag is a given value, and not a sampler */
	o = opts_on();
	o.sampler = "";
	assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
}

/* ---- service, rate, ring buffer --------------------------------------------- */

static void test_service(void **state)
{
	static const struct env_var env[] = {
		{ "OTEL_SERVICE_NAME", "from-env" },
		{ NULL, NULL },
	};
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.console = true;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_null(ts.collector.service); /* traces.c falls back to the comm */
	assert_int_equal(resolve(&o, env, &ts), 0);
	assert_string_equal(ts.collector.service, "from-env");
	o.service = "from-flag";
	assert_int_equal(resolve(&o, env, &ts), 0);
	assert_string_equal(ts.collector.service, "from-flag");
}

static void test_max_rate(void **state)
{
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.console = true;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.max_rate, TRACES_DEFAULT_MAX_RATE);
	o.max_rate = 0;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.max_rate, 0); /* no cap */
	o.max_rate = 250;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.max_rate, 250);
	o.max_rate = 10000000;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.max_rate, 10000000);
}

static void test_ringbuf(void **state)
{
	static const unsigned int good[] = { 4096, 8192, 1u << 20, 1u << 30 };
	static const unsigned int bad[] = { 1, 2048, 4095, 4097, 12288, (8u << 20) + 4096 };
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.console = true;
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_int_equal(ts.ringbuf, TRACES_DEFAULT_RINGBUF);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		o.ringbuf = good[i];
		assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
		assert_int_equal(ts.ringbuf, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.ringbuf = bad[i];
		assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
		assert_non_null(strstr(err, "power of two"));
	}
}

/* ---- empty values ------------------------------------------------------------- */

/* VAR= in a shell or a unit file means "not set". */
static void test_empty_env_is_unset(void **state)
{
	static const struct env_var empty[] = {
		{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "" },
		{ "OTEL_EXPORTER_OTLP_ENDPOINT", "" },
		{ "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "" },
		{ "OTEL_EXPORTER_OTLP_HEADERS", "" },
		{ "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "" },
		{ "OTEL_EXPORTER_OTLP_COMPRESSION", "" },
		{ "OTEL_TRACES_SAMPLER", "" },
		{ "OTEL_TRACES_SAMPLER_ARG", "" },
		{ "OTEL_SERVICE_NAME", "" },
		{ NULL, NULL },
	};
	/* an empty signal variable falls through to the generic one */
	static const struct env_var fall[] = {
		{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "" },
		{ "OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318" },
		{ "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "" },
		{ "OTEL_EXPORTER_OTLP_HEADERS", "a=1" },
		{ "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "" },
		{ "OTEL_EXPORTER_OTLP_COMPRESSION", "none" },
		{ NULL, NULL },
	};
	struct traces_opts o = opts_on();
	struct traces_setup ts;

	(void)state;
	assert_int_equal(resolve(&o, empty, &ts), 0);
	assert_true(ts.on); /* the console only */
	assert_null(ts.tracer.otlp_url);
	assert_null(ts.tracer.otlp_headers);
	assert_true(ts.tracer.otlp_gzip);
	assert_int_equal(ts.sampler, BS_SAMPLER_PB_ALWAYS_ON);
	assert_int_equal(ts.ratio, ALL);
	assert_null(ts.collector.service);

	o.sampler = "traceidratio"; /* an empty ARG: the default ratio, 1 */
	assert_int_equal(resolve(&o, empty, &ts), 0);
	assert_int_equal(ts.ratio, ALL);

	o = opts_on();
	assert_int_equal(resolve(&o, fall, &ts), 0);
	assert_true(ts.on);
	assert_string_equal(ts.tracer.otlp_url, "http://base:4318/v1/traces");
	assert_string_equal(ts.tracer.otlp_headers, "a=1");
	assert_false(ts.tracer.otlp_gzip);
}


/* Variables meant for some other program do not stop a daemon without traces,
 * nor turn OTLP on when OTel is disabled or set to other exporters. */
static void test_env_not_ours(void **state)
{
	struct env_var bad[] = { { "OTEL_TRACES_SAMPLER", "xray" },
				 { "OTEL_TRACES_SAMPLER_ARG", "lots" },
				 { "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd" },
				 { NULL, NULL } };
	struct env_var off[] = { { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318" },
				 { "OTEL_SDK_DISABLED", "true" },
				 { NULL, NULL } };
	struct env_var other[] = { { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/x" },
				   { "OTEL_TRACES_EXPORTER", "zipkin" },
				   { NULL, NULL } };
	struct env_var grpc[] = { { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317" },
				  { "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc" },
				  { NULL, NULL } };
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	assert_int_equal(resolve(&o, bad, &ts), 0);
	assert_false(ts.on);
	assert_int_equal(resolve(&o, off, &ts), 0);
	assert_false(ts.on);
	assert_int_equal(resolve(&o, other, &ts), 0);
	assert_false(ts.on);
	/* the flag is the operator's word */
	o.otlp_endpoint = "http://c:4318";
	assert_int_equal(resolve(&o, off, &ts), 0);
	assert_true(ts.on);
	o = opts();
	assert_int_equal(resolve(&o, grpc, &ts), -EINVAL);
	assert_non_null(strstr(err, "4318"));
}

static void test_otlp_url_shapes(void **state)
{
	struct traces_opts o = opts();
	struct traces_setup ts;

	(void)state;
	o.otlp_endpoint = "HTTP://c:4318";
	assert_int_equal(resolve(&o, NO_ENV, &ts), 0);
	assert_string_equal(ts.otlp_url, "HTTP://c:4318/v1/traces");
	o.otlp_endpoint = "http://c:4318/?x=1";
	assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
	o.otlp_endpoint = "http:///";
	assert_int_equal(resolve(&o, NO_ENV, &ts), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_exporter),
		cmocka_unit_test(test_env_not_ours),
		cmocka_unit_test(test_otlp_url_shapes),
		cmocka_unit_test(test_each_exporter_turns_on),
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_zipkin_bad_url),
		cmocka_unit_test(test_otlp_flag_base),
		cmocka_unit_test(test_otlp_env),
		cmocka_unit_test(test_otlp_not_http),
		cmocka_unit_test(test_otlp_url_too_long),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_compression),
		cmocka_unit_test(test_sampler_default),
		cmocka_unit_test(test_sampler_names),
		cmocka_unit_test(test_sampler_ratio_env),
		cmocka_unit_test(test_sample_flag),
		cmocka_unit_test(test_ratio_bad),
		cmocka_unit_test(test_sampler_unknown),
		cmocka_unit_test(test_service),
		cmocka_unit_test(test_max_rate),
		cmocka_unit_test(test_ringbuf),
		cmocka_unit_test(test_empty_env_is_unset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
