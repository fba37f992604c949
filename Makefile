# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# bunscope build.  `make` builds build/bunscope; `make help` lists the rest.

VERSION    := 0.1.0
BUILD      := build
ARCH       := x86
CLANG      ?= clang
LLVM_STRIP ?= llvm-strip
BPFTOOL    ?= bpftool
CC         ?= gcc

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

WARN       := -Wall -Wextra -Werror
CFLAGS     ?= -O2 -g
USER_CFLAGS = $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -I$(BUILD) \
	      -DBUNSCOPE_VERSION='"$(VERSION)"' $(EXTRA_CFLAGS)
LDLIBS     := -lbpf -lelf -lz -lmicrohttpd -lcurl -lpthread -lm
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Ivmlinux/$(ARCH) -Iinclude \
	      $(WARN) -Wno-unused-function

USER_SRCS  := $(wildcard user/*.c)
USER_OBJS  := $(patsubst user/%.c,$(BUILD)/user/%.o,$(USER_SRCS))
HEADERS    := $(wildcard include/*.h) $(wildcard user/*.h)

UNIT_TESTS := test_http_parse test_http_parse_win16 test_http_parse_slow test_routes test_expo \
	      test_thread_role test_limit test_export test_traces_cfg test_optval
UNIT_BINS  := $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))

.PHONY: all deps test unit integration bench demo clean help check-root fuzz
.DELETE_ON_ERROR:

all: $(BUILD)/bunscope

help:
	@echo "make            build build/bunscope"
	@echo "make deps       install missing Debian packages and Bun (into .deps/)"
	@echo "make test       deps + build + unit tests + privileged integration tests"
	@echo "make unit       unit tests only (no root needed)"
	@echo "make fuzz       libFuzzer targets, FUZZ_SECONDS (default 20) each (no root needed)"
	@echo "make demo       deps + build + example Bun app + traffic + metrics"
	@echo "make bench      deps + build + throughput/overhead benchmark"
	@echo "V=1             show commands"

$(BUILD) $(BUILD)/user $(BUILD)/tests:
	$(Q)mkdir -p $@

# ---- BPF ---------------------------------------------------------------------
$(BUILD)/bunscope.bpf.o: bpf/bunscope.bpf.c $(wildcard bpf/*.h) $(wildcard include/*.h) | $(BUILD)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(BUILD)/bunscope.skel.h: $(BUILD)/bunscope.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name bunscope_bpf > $@

# ---- daemon ------------------------------------------------------------------
$(BUILD)/user/%.o: user/%.c $(HEADERS) | $(BUILD)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -c $< -o $@

$(BUILD)/limit.bpf.o: bpf/limit.bpf.c include/limit.h | $(BUILD)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(BUILD)/limit.skel.h: $(BUILD)/limit.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name limit_bpf > $@

$(BUILD)/user/limit.o: $(BUILD)/limit.skel.h

# the objects that include the generated skeleton
$(BUILD)/user/loader.o $(BUILD)/user/bench.o $(BUILD)/user/uprobes.o: $(BUILD)/bunscope.skel.h

$(BUILD)/bunscope: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# ---- unit tests (cmocka, no root) ----------------------------------------
$(BUILD)/tests/test_http_parse: tests/unit/test_http_parse.c tests/unit/hp_harness.h $(HEADERS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< -o $@ -lcmocka

# the same tests with a 16-byte window: every line crosses windows
$(BUILD)/tests/test_http_parse_win16: tests/unit/test_http_parse.c tests/unit/hp_harness.h $(HEADERS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -DHP_WIN=16 $< -o $@ -lcmocka

# and without the inline fast path for ordinary fields, with a 7-byte window
$(BUILD)/tests/test_http_parse_slow: tests/unit/test_http_parse.c tests/unit/hp_harness.h $(HEADERS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -DHP_WIN=7 -DHP_NO_FAST=1 $< -o $@ -lcmocka

$(BUILD)/tests/test_thread_role: tests/unit/test_thread_role.c $(HEADERS) | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< -o $@ -lcmocka

$(BUILD)/tests/test_routes: tests/unit/test_routes.c $(BUILD)/user/routes.o | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ -lcmocka

$(BUILD)/tests/test_limit: tests/unit/test_limit.c $(BUILD)/user/limit_parse.o | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ -lcmocka

$(BUILD)/tests/test_optval: tests/unit/test_optval.c $(BUILD)/user/optval.o | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ -lcmocka

$(BUILD)/tests/test_traces_cfg: tests/unit/test_traces_cfg.c $(BUILD)/user/traces_cfg.o | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ -lcmocka -lm

$(BUILD)/tests/test_expo: tests/unit/test_expo.c $(BUILD)/user/expo.o | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ -lcmocka -lz

# export.o logs through log.h; the test brings its own log_msg (no libbpf)
$(BUILD)/tests/test_export: tests/unit/test_export.c $(BUILD)/user/export.o $(BUILD)/user/expo.o | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ -lcmocka -lz -lcurl -lpthread

# the WebSocket echo load generator of make bench
$(BUILD)/wsload: scripts/bench/wsload.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE $< -o $@

# the TCP SYN flood generator of the limiter's tests and make bench
$(BUILD)/flood: scripts/bench/flood.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -pthread $< -o $@

unit: $(UNIT_BINS)
	$(Q)set -e; for t in $(UNIT_BINS); do echo "  UNIT     $$t"; $$t; done

# ---- fuzzing (libFuzzer: clang with ASan and UBSan, no root) ------------------
# `make fuzz` builds every target into build/fuzz/ and runs each one for
# FUZZ_SECONDS on its checked-in seeds (tests/fuzz/corpus/, read only; what
# it finds goes to build/fuzz/), failing on a crash, leak, UBSan report,
# timeout or broken invariant.  `make test` runs it with the default.
FUZZ_SECONDS ?= 20
FUZZ_CC      ?= clang
FUZZ_TARGETS := http http_win7 ws traceparent routes escape values
FUZZ_BINS    := $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_TARGETS))
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		$(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser
FUZZ_DEPS    := tests/fuzz/fuzz.h tests/unit/hp_harness.h $(HEADERS)
# the daemon's sources each target links, and their libraries
fuzz_src_routes := user/routes.c
fuzz_src_escape := user/expo.c
fuzz_lib_escape := -lz
fuzz_src_values := user/optval.c user/limit_parse.c user/expo.c user/export.c \
		   user/traces_cfg.c user/log.c
fuzz_lib_values := -lcurl -lbpf -lelf -lz -lpthread -lm

$(BUILD)/fuzz:
	$(Q)mkdir -p $@

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS) $(USER_SRCS) | $(BUILD)/fuzz
	$(call msg,FUZZ-CC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $< $(fuzz_src_$*) -o $@ $(fuzz_lib_$*)

# the HTTP target again with a 7-byte window (every line crosses windows),
# and as a WebSocket-only target (upgraded before the input starts)
$(BUILD)/fuzz/fuzz_http_win7: tests/fuzz/fuzz_http.c $(FUZZ_DEPS) | $(BUILD)/fuzz
	$(call msg,FUZZ-CC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -DHP_WIN=7 -DHP_NO_FAST=1 $< -o $@

$(BUILD)/fuzz/fuzz_ws: tests/fuzz/fuzz_http.c $(FUZZ_DEPS) | $(BUILD)/fuzz
	$(call msg,FUZZ-CC,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZ_WS=1 $< -o $@

fuzz: $(FUZZ_BINS)
	$(Q)scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- the commands that matter ----------------------------------------------
deps:
	$(Q)scripts/deps.sh

test: deps
	$(Q)$(MAKE) --no-print-directory all unit $(BUILD)/flood
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)scripts/run-integration.sh

integration: all $(BUILD)/flood
	$(Q)scripts/run-integration.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BUILD)/wsload $(BUILD)/flood
	$(Q)python3 scripts/bench.py
	$(Q)python3 scripts/bench_limit.py

clean:
	$(Q)rm -rf $(BUILD)
