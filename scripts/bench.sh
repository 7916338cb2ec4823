#!/usr/bin/env bash
# Tracker overhead benchmark (issue: spine). Needs root and a built
# ./bwtracker. Prints msgs/s with the tracker off and on, alternating, the
# on/off ratio and the daemon's CPU use. Rounds: BWT_BENCH_ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
export BWTRACKER_BIN="${BWTRACKER_BIN:-$PWD/bwtracker}"
go test -run '^$' -bench 'BenchmarkTrackerOverhead' -benchtime=1x -count=1 -timeout 30m ./internal/integration/
