#!/usr/bin/env bash
# Tracker overhead benchmark. Needs root and a built
# ./bwtracker. Prints msgs/s of 64-byte stream and ping-pong with no hook, the
# floor (ebpf/floor.bpf.c) and bwtracker, alternating, medians and ratios, and
# the daemon's CPU use. BWT_BENCH_ROUNDS (default 5), BWT_BENCH_PHASE_MS (1500).
set -euo pipefail
cd "$(dirname "$0")/.."
export BWTRACKER_BIN="${BWTRACKER_BIN:-$PWD/bwtracker}"
go test -run '^$' -bench 'BenchmarkTrackerOverhead' -benchtime=1x -count=1 -timeout 30m ./internal/integration/
