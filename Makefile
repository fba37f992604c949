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

# build/ is the normal build; build/asan/ the same sources under ASan+UBSan
# (LeakSanitizer comes with ASan), for `make unit-asan` and the sanitized
# daemon build/asan/bunscope that one integration test runs.
SAN_DIR    := $(BUILD)/asan
SAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# the first report aborts, and a leak at exit is a report (test_sanitizers.py
# gives the daemon the same)
SAN_ENV    := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

USER_SRCS  := $(wildcard user/*.c)
HEADERS    := $(wildcard include/*.h) $(wildcard user/*.h)

UNIT_TESTS := test_http_parse test_http_parse_win16 test_http_parse_slow test_routes test_expo \
	      test_thread_role test_limit test_export test_traces_cfg test_optval
UNIT_BINS  := $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))

.PHONY: all deps test unit unit-asan asan check-static cppcheck clang-tidy format-check format \
	integration bench demo soak clean help check-root fuzz
.DELETE_ON_ERROR:

all: $(BUILD)/bunscope

help:
	@echo "make            build build/bunscope"
	@echo "make deps       install missing Debian packages and Bun (into .deps/)"
	@echo "make test       deps + static checks + build + unit tests (plain and sanitized) +"
	@echo "                privileged integration tests (one runs build/asan/bunscope)"
	@echo "make unit       unit tests only (no root needed)"
	@echo "make unit-asan  unit tests under ASan+UBSan+LSan (build/asan/)"
	@echo "make asan       the daemon under ASan+UBSan+LSan: build/asan/bunscope"
	@echo "make check-static  clang-format on every C file, cppcheck and clang-tidy on user/"
	@echo "make format     reformat every C file with clang-format"
	@echo "make fuzz       libFuzzer targets, FUZZ_SECONDS (default 20) each (no root needed)"
	@echo "make demo       deps + build + example Bun app + traffic + metrics"
	@echo "make bench      deps + build + throughput/overhead benchmark"
	@echo "make soak       deps + build + an hour at a fixed rate, RSS and maps plotted (SOAK_SECONDS)"
	@echo "V=1             show commands"

$(BUILD) $(BUILD)/user $(BUILD)/tests $(SAN_DIR)/user $(SAN_DIR)/tests:
	$(Q)mkdir -p $@

# ---- BPF ---------------------------------------------------------------------
# build/X.bpf.o from bpf/X.bpf.c (or scripts/bench/X.bpf.c, the benchmark's
# generator), and its skeleton build/X.skel.h with struct X_bpf
vpath %.bpf.c bpf scripts/bench

$(BUILD)/%.bpf.o: %.bpf.c | $(BUILD)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

$(BUILD)/bunscope.bpf.o: $(wildcard bpf/*.h) $(wildcard include/*.h)
$(BUILD)/limit.bpf.o: include/limit.h

# ---- daemon and unit tests, in two flavours -----------------------------------

# Unit tests: each one's sources, the daemon objects it links and its libraries.
test_http_parse_SRC       := tests/unit/test_http_parse.c tests/unit/hp_harness.h
# the same tests with a 16-byte window: every line crosses windows
test_http_parse_win16_SRC := tests/unit/test_http_parse.c tests/unit/hp_harness.h
test_http_parse_win16_DEF := -DHP_WIN=16
# and without the inline fast path for ordinary fields, with a 7-byte window
test_http_parse_slow_SRC  := tests/unit/test_http_parse.c tests/unit/hp_harness.h
test_http_parse_slow_DEF  := -DHP_WIN=7 -DHP_NO_FAST=1
test_thread_role_SRC      := tests/unit/test_thread_role.c
test_routes_SRC           := tests/unit/test_routes.c
test_routes_OBJS          := routes.o
test_limit_SRC            := tests/unit/test_limit.c
test_limit_OBJS           := limit_parse.o
test_optval_SRC           := tests/unit/test_optval.c
test_optval_OBJS          := optval.o
test_traces_cfg_SRC       := tests/unit/test_traces_cfg.c
test_traces_cfg_OBJS      := traces_cfg.o
test_traces_cfg_LIBS      := -lm
test_expo_SRC             := tests/unit/test_expo.c
test_expo_OBJS            := expo.o
test_expo_LIBS            := -lz
# export.o logs through log.h; the test brings its own log_msg (no libbpf)
test_export_SRC           := tests/unit/test_export.c
test_export_OBJS          := export.o expo.o
test_export_LIBS          := -lz -lcurl -lpthread

# $(call flavour,DIR,EXTRA_CFLAGS): DIR/user/*.o, DIR/bunscope, DIR/tests/*
define flavour
$(1)/user/%.o: user/%.c $$(HEADERS) | $(1)/user
	$$(call msg,CC,$$@)
	$$(Q)$$(CC) $$(USER_CFLAGS) $(2) -c $$< -o $$@

# the objects that include a generated skeleton
$(1)/user/limit.o: $$(BUILD)/limit.skel.h
$(1)/user/loader.o $(1)/user/bench.o $(1)/user/uprobes.o: $$(BUILD)/bunscope.skel.h

$(1)/bunscope: $$(patsubst user/%.c,$(1)/user/%.o,$$(USER_SRCS))
	$$(call msg,LINK,$$@)
	$$(Q)$$(CC) $$(CFLAGS) $(2) $$^ -o $$@ $$(LDLIBS)

endef

# $(call unit_test,DIR,EXTRA_CFLAGS,TEST)
define unit_test
$(1)/tests/$(3): $$($(3)_SRC) $$(addprefix $(1)/user/,$$($(3)_OBJS)) $$(HEADERS) | $(1)/tests
	$$(call msg,CC,$$@)
	$$(Q)$$(CC) $$(USER_CFLAGS) $(2) $$($(3)_DEF) $$(filter %.c %.o,$$^) -o $$@ -lcmocka $$($(3)_LIBS)
endef
$(eval $(call flavour,$(BUILD)))
$(eval $(call flavour,$(SAN_DIR),$(SAN_FLAGS)))
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_test,$(BUILD),,$(t))))
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_test,$(SAN_DIR),$(SAN_FLAGS),$(t))))

# the WebSocket echo load generator of make bench
$(BUILD)/wsload: scripts/bench/wsload.c | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE $< -o $@

# the TCP SYN flood generator of the limiter's tests and make bench, with
# its live-frame XDP program (-X, scripts/bench/xdpflood.bpf.c)
# (the object too: make bench loads its empty program)
$(BUILD)/flood: scripts/bench/flood.c $(BUILD)/xdpflood.skel.h $(BUILD)/xdpflood.bpf.o | $(BUILD)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -I$(BUILD) -pthread $< -o $@ -lbpf -lelf -lz

asan: $(SAN_DIR)/bunscope

unit: $(UNIT_BINS)
	$(Q)set -e; for t in $(UNIT_BINS); do echo "  UNIT     $$t"; $$t; done

# the unit tests again under ASan+UBSan+LSan: any report fails
unit-asan: $(addprefix $(SAN_DIR)/tests/,$(UNIT_TESTS))
	$(Q)set -e; for t in $^; do echo "  UNIT-SAN $$t"; $(SAN_ENV) $$t; done

# ---- static checks -----------------------------------------------------------
# cppcheck and clang-tidy (checks in .clang-tidy) on user/, clang-format on
# every C file (FORMAT_FILES).  The checkers read the skeletons through build/lint/ copies
# without the embedded object's bytes, fenced by NOLINTBEGIN/NOLINTEND
# (bpftool's code is not ours to fix).
LINT_DIR   := $(BUILD)/lint
LINT_SKELS := $(LINT_DIR)/bunscope.skel.h $(LINT_DIR)/limit.skel.h
LINT_FLAGS := -D_GNU_SOURCE -Iinclude -I$(LINT_DIR) -DBUNSCOPE_VERSION='"$(VERSION)"'
CPPCHECK   ?= cppcheck
CLANG_TIDY ?= clang-tidy
CLANG_FORMAT ?= clang-format

$(LINT_DIR):
	$(Q)mkdir -p $@

$(LINT_DIR)/%.skel.h: $(BUILD)/%.skel.h scripts/lint/skel-bytes.awk | $(LINT_DIR)
	$(call msg,LINT-SKEL,$@)
	$(Q){ echo '// NOLINTBEGIN'; awk -f scripts/lint/skel-bytes.awk $<; echo '// NOLINTEND'; } > $@

# the system headers stay out (with them cppcheck takes minutes and checks
# glibc); scripts/lint/libbpf.cfg spells out the libbpf macros instead
cppcheck: $(LINT_SKELS)
	$(call msg,CPPCHECK,user/)
	$(Q)$(CPPCHECK) -q --error-exitcode=1 --inline-suppr --enable=warning,performance,portability \
		--std=c11 --library=scripts/lint/libbpf.cfg $(LINT_FLAGS) user/

# one stamp a file: parallel with -j, and only what changed is checked again
$(LINT_DIR)/%.tidy: user/%.c $(HEADERS) .clang-tidy $(LINT_SKELS)
	$(call msg,TIDY,$<)
	$(Q)$(CLANG_TIDY) --quiet $< -- -std=gnu11 $(LINT_FLAGS) >$@.log 2>&1 || { cat $@.log; exit 1; }
	$(Q)touch $@

clang-tidy: $(patsubst user/%.c,$(LINT_DIR)/%.tidy,$(USER_SRCS))

# The files clang-format checks: every C file of the tree.
C_FILES      := $(wildcard user/*.[ch] include/*.h bpf/*.[ch] tests/unit/*.[ch] tests/apps/*.c \
		   tests/fuzz/*.[ch] scripts/bench/*.c)
FORMAT_FILES := $(C_FILES)

format-check:
	$(call msg,FORMAT,$(words $(FORMAT_FILES)) files)
	$(Q)$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES)

format:
	$(Q)$(CLANG_FORMAT) -i $(FORMAT_FILES)

check-static: format-check cppcheck clang-tidy

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
	$(Q)$(MAKE) --no-print-directory check-static
	$(Q)$(MAKE) --no-print-directory all unit unit-asan asan $(BUILD)/flood
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)scripts/run-integration.sh

# test_sanitizers runs the sanitized daemon
integration: all asan $(BUILD)/flood
	$(Q)scripts/run-integration.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BUILD)/wsload $(BUILD)/flood
	$(Q)python3 scripts/bench.py
	$(Q)python3 scripts/bench_limit.py

# not in CI: an hour by default (SOAK_SECONDS, SOAK_RATE); gnuplot draws the PNG
soak: deps
	$(Q)command -v gnuplot >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		gnuplot-nox >/dev/null; }
	$(Q)$(MAKE) --no-print-directory all
	$(Q)python3 scripts/soak.py

clean:
	$(Q)rm -rf $(BUILD)
