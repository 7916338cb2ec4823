// Package alerts owns bwtracker's alerting: rules, their evaluation on
// every flush, anomaly baselines, and the sinks alerts go to.
//
// # Data flow
//
// The collector calls an observer after every flush (cli/run.go wires it,
// as it wires internal/metrics); the observer converts the flush's samples
// to Deltas and calls Engine.Observe, which adds them to per-rule,
// per-label-set windows in memory and evaluates every rule. Rate rules run
// no SQL per interval. The database is read only at start and on reload:
// calendar windows load their period's totals so far from the store's
// tiers (Totals, up to the last flush seen; later flushes are counted
// live), anomaly rules load the hour tier (AppHours) and refresh it hourly.
// Writes (alert history, known apps) go through a goroutine of their own;
// sinks have their own goroutines and bounded queues. Observe never waits
// for the network or the disk. Cost: BenchmarkObserve (a 1000-delta flush,
// 200 programs, five rules) takes about 1.4 ms of CPU per flush (pprof
// samples; 6-7 ms wall on the shared 2-core test machine).
//
// # Rules
//
// A YAML file (run --rules) and one-line flags (run --alert
// 'name=big;comm=rsync;dir=tx;above=5MiB;over=1m'); see rules.go and the
// README. A rule matches on app, comm, exe, service, container, user (name
// or uid) and remote (IP or CIDR); values are globs (path.Match). "app" is,
// until the app rule (issue 10) lands, an alias of the executable's base
// name (the comm when the exe is unknown) — the exe label of
// bwtracker_bytes_total. remote_name/domain are refused with a message:
// remote names are not tracked yet. group_by chooses the labels an alert
// is per (default: the matched keys, or app when the rule matches all).
//
// Kinds:
//
//   - threshold (default): bytes in direction tx|rx|total over a sliding
//     window `over` (1s..31d; kept as up to 60 buckets per label set), as a
//     volume (above: 5MiB) or a rate (above: 1MB/s = volume / over); or
//     over a calendar-day / calendar-month (local midnight, month start).
//   - new-app: fires once for a program (executable path, or comm when the
//     path is unknown) never seen on the network; the keys live in the
//     store's known_apps table, so not again after a restart. It resolves
//     after `hold` (10m).
//   - anomaly: see below.
//
// Firing and resolving: an alert fires at the first evaluation whose value
// is above the threshold (after `for`, default 0) and resolves once the
// value stays below resolve_below x threshold (default 0.9) for
// resolve_after evaluations (default 2) — hysteresis, so a value hovering
// at the threshold does not flap. Each alert has rule, labels, value,
// threshold, started_at, ended_at (null while firing). Reloads keep the
// state of rules whose definition is unchanged; alerts of removed or
// changed rules resolve. A bad file is refused with file:line: reason and
// the previous rules stay (Loader). The file is polled (mtime, size,
// inode, every second) rather than watched with inotify: it costs one stat
// a second and sees editors' rename-over and configuration management.
//
// # Anomaly baselines
//
// Per app and direction, from the store's hour tier (rollup_1h) over the
// last BaselineWeeks+1 weeks, refreshed hourly. For an hour h the samples
// are the app's bytes at h-1..h+1 on each of the previous BaselineDays
// days (hour of day) and BaselineWeeks weeks (hour of week): up to 33
// hours, missing hours counted as 0 once the app was first seen. The
// threshold is the largest of
//
//   - a floor (high 2 MiB, medium 8 MiB, low 32 MiB per hour): quiet apps
//     must move a meaningful amount before they are anomalous;
//   - a log-normal model: exp(median(log v) + K*sigma), v = bytes + 64 KiB,
//     sigma = 1.4826 * MAD(log v), at least 0.25-0.3; K = 3 / 4 / 6 for
//     high / medium / low. Traffic noise is multiplicative (a browser's
//     busy hour is a few times its median, not a few MiB more);
//   - PeakRatio (1.5 / 2 / 3) times the largest of those samples: what the
//     app recently did at about this time is not news (a nightly job whose
//     start jitters; a new nightly upload alerts on its first night, then
//     it is the new normal).
//
// Warm-up: an app fires only once its history is WarmUp (7 days) old and
// has at least 15 sample hours; new apps are new-app's business. Live, the
// value is the app's bytes in the sliding last hour (kept like a 1h
// window) against the two clock hours' thresholds blended by overlap; the
// partial hour before the daemon started is not counted (misses, never
// false alarms).
//
// `make bench-anomaly` replays synthetic 8-week histories with injected
// spikes, a new nightly upload and a 48-hour steady upload, hour by hour,
// and prints precision (alert runs overlapping an anomaly / all alert
// runs) and recall (anomalies with an alert) per sensitivity; see
// bench_anomaly_test.go for the programs and the ground truth.
//
// # Sinks
//
// The daemon's log always; Prometheus Alertmanager (POST /api/v2/alerts,
// resent every `resend` while firing with endsAt = now + 4 x resend, like
// Prometheus, and endsAt = ended_at on resolve); webhooks (POST
// {"version":"1","alert":{...}}, retried with exponential backoff, bounded
// queue); commands (argv, absolute path, no shell, the alert as JSON on
// stdin, a timeout). Deliveries, failures and drops are counted per sink
// in /api/status (alerts.sinks) and /metrics
// (bwtracker_alert_notifications_total, bwtracker_alert_sink_failures_total,
// bwtracker_alert_notifications_dropped_total); bwtracker_alerts_firing
// {rule} counts firing alerts.
//
// History: every alert is kept in the store's alert_history table (the
// newest 10000) and in memory, served by GET /api/alerts (?all=1 includes
// resolved ones) and `bwtracker alerts`. Alerts a previous run left firing
// are closed (ended_at = the next start).
package alerts
