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

mkdir -p "$DIR"
echo "== daemon under new remotes per second (20 s each; figures are CPU time of the daemon process / wall time)"
BWTRACKER_BIN=$BIN $GO test -count=1 -timeout 1h -run '^$' -bench '^BenchmarkScale$' -benchtime 1x ./internal/integration/ |
	grep -vE '^(goos|goarch|pkg|cpu|PASS|ok|BenchmarkScale)' | tee "$DIR/daemon.txt"

echo "== Store.Write, every sample a new remote (5,000-row flushes)"
$GO test -count=1 -run '^$' -bench '^BenchmarkWriteNewRemotes$' -benchtime 20x ./internal/store/ | grep -E '^Benchmark'

DB=${BENCH_SCALE_DB:-}
if [[ -z $DB ]]; then
	DB="$DIR/scale.db"
	echo "== generating ${BENCH_DAYS:-30} days of a server with ${BENCH_CLIENTS_PER_HOUR:-10000} new clients an hour into $DB (takes minutes)"
	BWTRACKER_BENCH_HISTORY=1 BWTRACKER_BENCH_DB="$DB" BENCH_CLIENTS_PER_HOUR=${BENCH_CLIENTS_PER_HOUR:-10000} \
		$GO test -count=1 -timeout 3h -run '^TestHistoryBench$' -v ./internal/store/ |
		grep -E '^\s+bench_test.go' | sed 's/^ *bench_test.go:[0-9]*: /  /' | tee "$DIR/history.txt"
fi

echo "== report latency on $DB (best of 3: wall clock incl. process start, and the process's CPU time)"
: >"$DIR/reports.txt"
time_cmd() {
	local best=999999 bestcpu=999999 ms cpu rows
	for _ in 1 2 3; do
		# /usr/bin/time: elapsed and user+system seconds of the report itself.
		read -r ms cpu < <({ /usr/bin/time -f '%e %U %S' "$BIN" "$@" >"$DIR/out.txt"; } 2>&1 | tail -1 | awk '{printf "%d %d\n", $1*1000, ($2+$3)*1000}')
		rows=$(wc -l <"$DIR/out.txt")
		((ms < best)) && best=$ms
		((cpu < bestcpu)) && bestcpu=$cpu
	done
	printf '  %6d ms wall %6d ms CPU %8d lines  bwtracker %s\n' "$best" "$bestcpu" "$rows" "$*" | tee -a "$DIR/reports.txt"
}
time_cmd report --db "$DB" --period day
time_cmd report --db "$DB" --by process --since 30d
time_cmd report --db "$DB" --by remote --since 30d --no-resolve --top 20
time_cmd report --db "$DB" --by process,remote --since 7d --no-resolve --top 20
time_cmd report --db "$DB" --by process,remote --since 1h --no-resolve --top 20
time_cmd report --db "$DB" --period hour
time_cmd report --db "$DB" --by remote,port --since 24h --no-resolve --top 20
time_cmd report --db "$DB" --by remote --since 30d --format json
echo "== database"
"$BIN" db stats --db "$DB"

echo
echo "== summary (one run, side by side)"
echo "-- daemon, new remotes per second"
sed -n '/^new remotes\/s |/,$p' "$DIR/daemon.txt"
echo "-- 30-day file ($DB): $(du -b "$DB" | cut -f1) bytes"
grep -E 'DB bytes per million|database after' "$DIR/history.txt" 2>/dev/null || echo "  (history generated earlier: see BENCH_SCALE_DB)"
echo "-- reports on it"
cat "$DIR/reports.txt"
