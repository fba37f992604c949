// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * traces_cfg.c: trace options from the command line and from the standard
 * OpenTelemetry environment variables users already set.  Flags win.
 *
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  the traces URL, as it is
 *   OTEL_EXPORTER_OTLP_ENDPOINT         a base URL: /v1/traces is appended
 *   OTEL_EXPORTER_OTLP_[TRACES_]HEADERS k=v,k2=v2
 *   OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION  gzip (our default) or none
 *   OTEL_SERVICE_NAME                   service.name
 *   OTEL_TRACES_SAMPLER[_ARG]           the SDK sampler names and ratio
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "traces.h"

static const struct {
	const char *name;
	__u32 id;
	bool ratio;
} samplers[] = {
	{ "always_on", BS_SAMPLER_ALWAYS_ON, false },
	{ "always_off", BS_SAMPLER_ALWAYS_OFF, false },
	{ "traceidratio", BS_SAMPLER_RATIO, true },
	{ "parentbased_always_on", BS_SAMPLER_PB_ALWAYS_ON, false },
	{ "parentbased_always_off", BS_SAMPLER_PB_ALWAYS_OFF, false },
	{ "parentbased_traceidratio", BS_SAMPLER_PB_RATIO, true },
};

static const char *pick(const char *flag, const char *(*env)(const char *), const char *a,
			const char *b)
{
	const char *v;

	if (flag)
		return flag;
	v = a ? env(a) : NULL;
	if (v && *v)
		return v;
	v = b ? env(b) : NULL;
	return v && *v ? v : NULL;
}

static int parse_ratio(const char *s, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !(d >= 0 && d <= 1))
		return -EINVAL;
	*out = d;
	return 0;
}

static bool is_http_url(const char *u)
{
	size_t n = !strncasecmp(u, "http://", 7) ? 7 : !strncasecmp(u, "https://", 8) ? 8 : 0;

	return n && u[n] && u[n] != '/';
}

/*
 * May the environment turn OTLP on?  Not when the SDK is disabled or
 * OTEL_TRACES_EXPORTER names other exporters only (the app's settings,
 * perhaps, not ours).
 */
static bool env_otlp_wanted(const char *(*env)(const char *))
{
	const char *d = env("OTEL_SDK_DISABLED"), *e = env("OTEL_TRACES_EXPORTER");

	if (d && !strcasecmp(d, "true"))
		return false;
	return !e || !*e || strstr(e, "otlp");
}

int traces_resolve(const struct traces_opts *o, const char *(*env)(const char *),
		   struct traces_setup *ts, char *err, size_t errlen)
{
	const char *v, *sampler, *arg;
	double ratio = 1.0;
	int si = -1;

	memset(ts, 0, sizeof(*ts));

	/* OTLP: the flag and OTEL_EXPORTER_OTLP_ENDPOINT are base URLs */
	v = NULL;
	if (!o->otlp_endpoint && env_otlp_wanted(env))
		v = pick(NULL, env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", NULL);
	if (v) {
		if (strlen(v) >= sizeof(ts->otlp_url)) {
			snprintf(err, errlen, "OTLP endpoint: longer than %zu bytes",
				 sizeof(ts->otlp_url) - 1);
			return -EINVAL;
		}
		snprintf(ts->otlp_url, sizeof(ts->otlp_url), "%s", v);
	} else {
		const char *base = o->otlp_endpoint;
		size_t n;

		if (!base && env_otlp_wanted(env))
			base = pick(NULL, env, "OTEL_EXPORTER_OTLP_ENDPOINT", NULL);
		n = base ? strlen(base) : 0;
		while (n && base[n - 1] == '/')
			n--;
		if (base && memchr(base, '?', n)) {
			snprintf(err, errlen, "OTLP endpoint '%s': a base URL without a query",
				 base);
			return -EINVAL;
		}
		if (n + 11 > sizeof(ts->otlp_url)) {
			snprintf(err, errlen, "OTLP endpoint: longer than %zu bytes",
				 sizeof(ts->otlp_url) - 11);
			return -EINVAL;
		}
		if (base && n >= 10 && !memcmp(base + n - 10, "/v1/traces", 10))
			snprintf(ts->otlp_url, sizeof(ts->otlp_url), "%.*s", (int)n, base);
		else if (base)
			snprintf(ts->otlp_url, sizeof(ts->otlp_url), "%.*s/v1/traces", (int)n,
				 base);
	}
	if (ts->otlp_url[0]) {
		v = pick(NULL, env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
			 "OTEL_EXPORTER_OTLP_PROTOCOL");
		if (v && strcmp(v, "http/json") && strcmp(v, "http/protobuf")) {
			snprintf(err, errlen,
				 "OTLP protocol '%s': bunscope sends OTLP/HTTP JSON "
				 "(http/json); use the collector's HTTP port (4318), not gRPC",
				 v);
			return -EINVAL;
		}
		if (!is_http_url(ts->otlp_url)) {
			snprintf(err, errlen,
				 "OTLP endpoint '%s': an http:// or https:// URL is "
				 "needed (OTLP/HTTP; gRPC is not supported)",
				 ts->otlp_url);
			return -EINVAL;
		}
		ts->tracer.otlp_url = ts->otlp_url;
	}
	ts->tracer.zipkin_url = o->zipkin_url;
	if (o->zipkin_url && !is_http_url(o->zipkin_url)) {
		snprintf(err, errlen,
			 "--zipkin-endpoint '%s': an http:// or https:// URL, e.g. "
			 "http://localhost:9411/api/v2/spans",
			 o->zipkin_url);
		return -EINVAL;
	}
	ts->tracer.file_path = o->file;
	ts->tracer.file_max_bytes = o->file_max;
	ts->tracer.console = o->console;
	ts->tracer.queue_max = o->queue;
	ts->on = ts->tracer.otlp_url || ts->tracer.zipkin_url || ts->tracer.file_path ||
		 ts->tracer.console;
	/* traces off: the sampler variables are some other program's business */
	if (!ts->on)
		return 0;
	ts->tracer.otlp_headers = pick(o->otlp_headers, env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
				       "OTEL_EXPORTER_OTLP_HEADERS");
	v = pick(o->compression, env, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
		 "OTEL_EXPORTER_OTLP_COMPRESSION");
	if (v && strcmp(v, "gzip") && strcmp(v, "none")) {
		snprintf(err, errlen, "OTLP compression '%s': gzip or none", v);
		return -EINVAL;
	}
	ts->tracer.otlp_gzip = !v || !strcmp(v, "gzip");

	/* sampling: --traces-sample alone means parent-based with that ratio */
	sampler = pick(o->sampler, env, o->ratio ? NULL : "OTEL_TRACES_SAMPLER", NULL);
	if (!sampler)
		sampler = o->ratio ? "parentbased_traceidratio" : "parentbased_always_on";
	for (size_t i = 0; i < sizeof(samplers) / sizeof(samplers[0]); i++)
		if (!strcmp(sampler, samplers[i].name))
			si = (int)i;
	if (si < 0) {
		snprintf(err, errlen,
			 "sampler '%s': one of always_on, always_off, traceidratio, "
			 "parentbased_always_on, parentbased_always_off, "
			 "parentbased_traceidratio",
			 sampler);
		return -EINVAL;
	}
	arg = pick(o->ratio, env, "OTEL_TRACES_SAMPLER_ARG", NULL);
	if (samplers[si].ratio && arg && parse_ratio(arg, &ratio)) {
		snprintf(err, errlen, "sampling ratio '%s': a number from 0 to 1", arg);
		return -EINVAL;
	}
	if (o->ratio && !samplers[si].ratio) {
		snprintf(err, errlen, "--traces-sample needs a ratio sampler, not '%s'", sampler);
		return -EINVAL;
	}
	ts->sampler = samplers[si].id;
	ts->ratio = samplers[si].ratio ? (__u64)llround(ratio * 4294967296.0) : 1ULL << 32;
	if (samplers[si].ratio)
		snprintf(ts->sampler_desc, sizeof(ts->sampler_desc), "%s %g", sampler, ratio);
	else
		snprintf(ts->sampler_desc, sizeof(ts->sampler_desc), "%s", sampler);

	ts->max_rate = o->max_rate < 0 ? TRACES_DEFAULT_MAX_RATE : (__u32)o->max_rate;
	ts->ringbuf = o->ringbuf ? o->ringbuf : TRACES_DEFAULT_RINGBUF;
	if (ts->ringbuf & (ts->ringbuf - 1) || ts->ringbuf < 4096) {
		snprintf(err, errlen, "--traces-ringbuf: a power of two of at least 4096");
		return -EINVAL;
	}
	ts->query = o->query;
	ts->collector.service = pick(o->service, env, "OTEL_SERVICE_NAME", NULL);
	return 0;
}
