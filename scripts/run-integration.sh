#!/bin/sh
# Integration tests of bunscope (what `make test` / `make integration` run
# after building).  Needs root for the daemon's BPF programs; CI sets
# BUNSCOPE_REQUIRE_PRIVILEGED=1 so that skipped privileged tests fail.
#
#   scripts/run-integration.sh                 # everything
#   scripts/run-integration.sh pending test_cli  # tests whose file::name contains a filter
#   scripts/run-integration.sh --list | --timeout 300 | -x | -v
set -eu
cd "$(dirname "$0")/.."
exec python3 tests/integration/run.py "$@"
