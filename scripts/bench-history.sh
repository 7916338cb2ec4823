#!/usr/bin/env bash
# Fill a database with 30 days of synthetic history (200 processes, 2,000
# remotes) through the real Write + rollup + prune code, then time the
# reports a user runs on it with the real binary.
#
#   make bench-history                    # or: scripts/bench-history.sh
#   BENCH_FLOWS=20 scripts/bench-history.sh   # flows active per second
#
# Env: BENCH_DAYS (30), BENCH_FLOWS (50), BENCH_FULLRES_DAYS (1: the last
# day is written at a 1 s interval; older days as one flush per minute
# holding the whole active flow set and a minute of bytes, which gives the
# 1m/1h/1d tiers the same rows in a fraction of the time), BWTRACKER_BIN
# (./bwtracker), BENCH_DIR (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BWTRACKER_BIN:-./bwtracker}
DIR=${BENCH_DIR:-$(mktemp -d)}
DB="$DIR/bench.db"
if [[ ! -x $BIN ]]; then
	echo "bench-history: $BIN not found: run \`make\` first or set BWTRACKER_BIN" >&2
	exit 1
fi
echo "== generating ${BENCH_DAYS:-30} days, ${BENCH_FLOWS:-50} flows/s into $DB (takes minutes)"
BWTRACKER_BENCH_HISTORY=1 BWTRACKER_BENCH_DB="$DB" go test -count=1 -timeout 3h \
	-run '^TestHistoryBench$' -v ./internal/store/ | grep -E '^\s+bench_test.go' | sed 's/^ *bench_test.go:[0-9]*: /  /'

echo "== ingest through Store.Write (go test -bench)"
go test -run '^$' -bench 'BenchmarkWrite|BenchmarkRollup' -benchtime 2x -count=1 ./internal/store/ | grep -E '^Benchmark'

echo "== report latency with $BIN (best of 3, wall clock incl. process start)"
time_cmd() {
	local best=999999 t0 t1 ms
	for _ in 1 2 3; do
		t0=$(date +%s%N)
		"$BIN" "$@" >/dev/null
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		((ms < best)) && best=$ms
	done
	printf '  %5d ms  bwtracker %s\n' "$best" "$*"
}
time_cmd report --db "$DB" --period day
time_cmd report --db "$DB" --period day --format json
time_cmd report --db "$DB" --by process --since 30d
time_cmd report --db "$DB" --by exe --since 30d
time_cmd report --db "$DB" --by user --since 30d
time_cmd report --db "$DB" --by remote --since 30d --no-resolve
time_cmd report --db "$DB" --by process,remote --since 7d --no-resolve --top 20
time_cmd report --db "$DB" --period hour
time_cmd report --db "$DB" --top-days 10
time_cmd report --db "$DB" --by process --since 1h
echo "== database"
"$BIN" db stats --db "$DB"
