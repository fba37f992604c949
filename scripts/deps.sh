#!/bin/sh
# Install what bunscope needs to build, test, benchmark and demo on a Debian
# machine: build dependencies from Debian, Bun from the npm registry into the
# tree (.deps/).  Idempotent: only what is missing is installed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUN_VERSION=${BUN_VERSION:-1.4.5}

# Build: clang/llvm (BPF objects), bpftool (skeletons), libbpf/libelf/zlib,
# libmicrohttpd (HTTP endpoints), libcurl4-openssl-dev (the OTLP and Zipkin
# span exporters POST through libcurl: keep-alive, https, proxies and
# timeouts are its job, not ours).  Tests: cmocka, curl, wrk, prometheus
# (promtool and a real scraper), python3 (integration tests), iproute2.
# Bench: nftables and iptables (the limiter's comparison), ethtool (GRO on
# the veth, so that it takes XDP frames without a program, and its counters).  Static checks
# (make check-static, run first by make test): cppcheck, clang-tidy and
# clang-format.  The sanitizer builds use gcc's ASan/UBSan runtimes, which
# come with gcc.  Fuzzing: libclang-rt-dev (clang's libFuzzer, ASan and UBSan
# runtimes, which plain clang does not bring; make fuzz links against them).
# nodejs/npm only fetch Bun.
PKGS="clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libmicrohttpd-dev
      libcurl4-openssl-dev libcmocka-dev pkg-config make gcc curl wrk prometheus
      python3 iproute2 procps nftables iptables ethtool nodejs npm cppcheck clang-tidy clang-format
      libclang-rt-dev"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# npm may come from elsewhere (nodesource, nvm): do not fight it.
if command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo "$missing" | xargs)

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing Debian packages: $missing" >&2
		echo "deps: run as root (or: sudo apt-get install $missing)" >&2
		exit 1
	fi
	echo "deps: installing $missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# The prometheus package starts a service where systemd runs; we only
	# want the binaries, so keep service starts out of it.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

bun="$ROOT/.deps/node_modules/bun/bin/bun.exe"
have=""
[ -x "$bun" ] && have=$("$bun" --version 2>/dev/null || true)
if [ "$have" != "$BUN_VERSION" ]; then
	echo "deps: installing bun@$BUN_VERSION from the npm registry into .deps/"
	mkdir -p "$ROOT/.deps"
	[ -f "$ROOT/.deps/package.json" ] || echo '{"private":true}' > "$ROOT/.deps/package.json"
	(cd "$ROOT/.deps" && npm install --no-audit --no-fund --loglevel=error "bun@$BUN_VERSION" >/dev/null)
	have=$("$bun" --version)
fi
# prom-client: what `make bench` compares bunscope with (in-process metrics)
PROM_CLIENT_VERSION=${PROM_CLIENT_VERSION:-15.1.3}
if [ ! -f "$ROOT/.deps/node_modules/prom-client/package.json" ] ||
   ! grep -q "\"version\": \"$PROM_CLIENT_VERSION\"" "$ROOT/.deps/node_modules/prom-client/package.json"; then
	echo "deps: installing prom-client@$PROM_CLIENT_VERSION (for make bench) into .deps/"
	(cd "$ROOT/.deps" && npm install --no-audit --no-fund --loglevel=error \
		"bun@$BUN_VERSION" "prom-client@$PROM_CLIENT_VERSION" >/dev/null)
fi
mkdir -p "$ROOT/.deps/bin"
ln -sf "$bun" "$ROOT/.deps/bin/bun"
echo "deps: ok (bun $have at .deps/bin/bun)"
