#!/usr/bin/env bash
# Many new remotes per second, side by side in one run:
#  1. the real daemon (root) while one process makes 1k / 5k / 20k / 50k new
#     remotes a second (and 5k/s with each remote live 10 s: 50,000 live
#     flows): its CPU, drain cadence, write backlog, catch-up and bytes lost;
#  2. Store.Write CPU per new remote (go test -bench);
#  3. a 30-day high-cardinality file (a server with BENCH_CLIENTS_PER_HOUR,
#     10,000, new clients an hour) written through the real Write + rollup +
#     prune code: DB bytes per million samples, and report latency on it.
#
#   make bench-scale                      # or: sudo scripts/bench-scale.sh
#
# Env: BWT_SCALE_RATES (1000,5000,20000,50000,5000:10 = RATE[:LIFE s]),
# BWT_SCALE_SECS (20), BENCH_DAYS (30), BENCH_CLIENTS_PER_HOUR (10000),
# BENCH_SCALE_DB (reuse this history file instead of generating one),
# BWTRACKER_BIN (./bwtracker), BENCH_DIR (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BWTRACKER_BIN:-./bwtracker}")
DIR=${BENCH_DIR:-$(mktemp -d)}
GO=${GO:-go}
if [[ ! -x $BIN ]]; then
	echo "bench-scale: $BIN not found: run \`make\` first or set BWTRACKER_BIN" >&2
	exit 1
fi
if [[ $(id -u) != 0 ]]; then
	echo "bench-scale: the daemon part loads BPF programs: run as root (sudo make bench-scale)" >&2
	exit 1
fi

echo "== daemon under new remotes per second (20 s each; figures are CPU time of the daemon process / wall time)"
BWTRACKER_BIN=$BIN $GO test -count=1 -timeout 1h -run '^$' -bench '^BenchmarkScale$' -benchtime 1x ./internal/integration/ |
	grep -vE '^(goos|goarch|pkg|cpu|PASS|ok|BenchmarkScale)'

echo "== Store.Write, every sample a new remote (5,000-row flushes)"
$GO test -count=1 -run '^$' -bench '^BenchmarkWriteNewRemotes$' -benchtime 20x ./internal/store/ | grep -E '^Benchmark'

DB=${BENCH_SCALE_DB:-}
if [[ -z $DB ]]; then
	DB="$DIR/scale.db"
	echo "== generating ${BENCH_DAYS:-30} days of a server with ${BENCH_CLIENTS_PER_HOUR:-10000} new clients an hour into $DB (takes minutes)"
	BWTRACKER_BENCH_HISTORY=1 BWTRACKER_BENCH_DB="$DB" BENCH_CLIENTS_PER_HOUR=${BENCH_CLIENTS_PER_HOUR:-10000} \
		$GO test -count=1 -timeout 3h -run '^TestHistoryBench$' -v ./internal/store/ |
		grep -E '^\s+bench_test.go' | sed 's/^ *bench_test.go:[0-9]*: /  /'
fi

echo "== report latency on $DB (best of 3, wall clock incl. process start)"
time_cmd() {
	local best=999999 t0 t1 ms rows
	for _ in 1 2 3; do
		t0=$(date +%s%N)
		rows=$("$BIN" "$@" | wc -l)
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		((ms < best)) && best=$ms
	done
	printf '  %6d ms  %8d lines  bwtracker %s\n' "$best" "$rows" "$*"
}
time_cmd report --db "$DB" --period day
time_cmd report --db "$DB" --by process --since 30d
time_cmd report --db "$DB" --by remote --since 30d --no-resolve --top 20
time_cmd report --db "$DB" --by process,remote --since 7d --no-resolve --top 20
time_cmd report --db "$DB" --by process,remote --since 1h --no-resolve --top 20
time_cmd report --db "$DB" --period hour
echo "== database"
"$BIN" db stats --db "$DB"
