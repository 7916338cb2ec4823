// bwtracker dashboard: live view from the SSE stream (pre-filled per app
// from /api/history, so the stacked chart is real from the first frame),
// history windows from /api/history and /api/processes (the daemon's
// downtime drawn as gaps), a table grouped by app that expands to its
// processes (sortable, filterable also by remote address or name, with a
// totals row, keyboard-navigable), a per-process detail panel, the history
// overview (overview.js) and the view's state in the URL (urlstate.js).
import "./style.css";
import { getJSON, LiveStream, setToken, tokenFromHash, HTTPError } from "./api.js";
import { BarChart, RateChart, StackChart } from "./charts.js";
import { esc, fmtBytes, fmtDuration, fmtExact, fmtRate } from "./format.js";
import { Overview } from "./overview.js";
import { appOf, groupByApp, matchLocal, sortRows, totals } from "./table.js";
import { readURL, writeURL } from "./urlstate.js";

const $ = (id) => document.getElementById(id);

const LIVE_SPAN_S = 300; // the live window: 5 minutes
const TOP_STACK = 5; // series in the stacked chart (plus "other")
const PREFILL_PROCS = 8; // processes whose history pre-fills the live chart
const WINDOWS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400 };

const state = {
  window: "live",
  custom: null, // {since, until} ISO strings, {from, to}: the date fields' values
  snap: null, // last stream body
  status: null,
  // The live buffer; a null up/down/procs entry is a point not measured
  // (stream down, daemon restarted): a gap in the charts.
  live: { ts: [], up: [], down: [], procs: [] }, // procs[i]: Map procKey -> {r, label, app}
  liveGaps: [], // [[from, to] seconds]
  prefill: "pending", // "pending" | "done" | "failed"
  hist: null, // {rows, seconds, totals}
  rows: [], // the table's process rows for the current window
  sort: { key: "rate", dir: -1 },
  filter: "",
  remoteMatch: null, // {text, keys: Set of procKey}: processes whose remotes match the filter
  group: "app", // table grouping: "app" | "process"
  expanded: new Set(), // expanded apps
  selected: null, // process key
  pendingSel: null, // from the URL, opened once its row is there
  focusKey: null, // the table row holding the roving tabindex
  gen: 0, // bumps on every window change; stale responses are dropped
  streamOK: false,
  streamEverOK: false,
  fetchErr: null,
  streamMsg: null,
  alerts: [], // GET /api/alerts?all=1, newest first
};

const charts = {};
let overview = null;

function procKey(p) {
  return `${p.pid}:${p.start_ns}:${p.comm}`;
}

function procLabel(p) {
  return `${p.comm || "?"} (${p.pid})`;
}

function saveURL() {
  writeURL({
    w: state.window === "live" ? "" : state.window,
    from: state.window === "custom" && state.custom ? state.custom.from : "",
    to: state.window === "custom" && state.custom ? state.custom.to : "",
    q: state.filter,
    sel: state.selected || state.pendingSel || "",
    g: state.group === "app" ? "" : state.group,
    open: [...state.expanded].join(","),
    ov: overview && overview.period !== "day" ? overview.period : "",
  });
}

// --- banner and connection pill ----------------------------------------------

function setConn(kind, text) {
  const el = $("conn");
  el.className = "pill pill-" + kind;
  el.textContent = text;
}

function renderBanner() {
  const b = $("banner");
  const tf = $("token-form");
  let msg = "";
  let auth = false;
  if (state.streamMsg) {
    msg = state.streamMsg.text;
    auth = state.streamMsg.auth;
  } else if (state.fetchErr) {
    msg = state.fetchErr.message;
    auth = state.fetchErr.status === 401;
  }
  if (auth) msg = "This bwtracker requires an API token (the one given to `bwtracker run --auth-token`): " + msg;
  b.hidden = !msg;
  b.classList.toggle("banner-auth", auth);
  $("banner-text").textContent = msg;
  tf.hidden = !auth;
}

function onStreamState(kind, msg, retryMs) {
  if (kind === "live") {
    if (!state.streamOK) {
      state.streamOK = true;
      state.streamEverOK = true;
      state.streamMsg = null;
      setConn("live", "live");
      renderBanner();
      refreshStatus();
      renderCards();
    }
    return;
  }
  if (state.streamOK) liveBreak(); // the line stops where the stream did
  state.streamOK = false;
  const retry = retryMs ? ` Retrying in ${Math.round(retryMs / 1000)} s…` : " Reconnecting…";
  if (kind === "auth") {
    setConn("down", "token needed");
    state.streamMsg = { text: msg, auth: true };
  } else if (kind === "down") {
    setConn("down", "offline");
    state.streamMsg = { text: `Cannot reach the bwtracker daemon at ${location.host}: is \`bwtracker run\` running?${retry}` };
  } else {
    setConn("wait", "reconnecting");
    state.streamMsg = { text: `Live stream dropped${msg ? " (" + msg + ")" : ""}.${retry}` };
  }
  renderBanner();
  renderCards();
  if (state.window === "live") renderTable();
}

function fetchFailed(e) {
  if (e.name === "AbortError") return;
  state.fetchErr = e instanceof HTTPError ? e : new HTTPError(0, String(e.message || e));
  if (e.status === 0) state.fetchErr.message = `Cannot reach the bwtracker daemon at ${location.host}: is \`bwtracker run\` running?`;
  renderBanner();
}

function fetchOK() {
  if (state.fetchErr) {
    state.fetchErr = null;
    renderBanner();
  }
}

// --- live data ---------------------------------------------------------------

function intervalS() {
  return state.snap && state.snap.interval_ms ? Math.max(1, Math.round(state.snap.interval_ms / 1000)) : 1;
}

// The live buffer is a sorted list of points {t, up, down, procs}; a point
// with up === null was not measured.
const L = [];

function liveTrim() {
  const last = L.length ? L[L.length - 1].t : 0;
  while (L.length && L[0].t < last - LIVE_SPAN_S) L.shift();
  state.liveGaps = state.liveGaps.filter(([, b]) => b >= last - LIVE_SPAN_S);
}

// liveBreak ends the line where the stream stopped: a not-measured point
// one interval after the last one (history fills it in if the daemon
// kept counting, see mergeHistory).
function liveBreak() {
  if (!L.length || L[L.length - 1].up === null) return;
  L.push({ t: L[L.length - 1].t + intervalS(), up: null, down: null, procs: null });
}

// mergeHistory puts history points where the buffer has none or only a
// not-measured one (the pre-fill, and the hole of a stream outage).
function mergeHistory(pts) {
  const byT = new Map(L.map((p, i) => [Math.round(p.t), i]));
  for (const p of pts) {
    const i = byT.get(Math.round(p.t));
    if (i === undefined) L.push(p);
    else if (L[i].up === null) L[i] = p;
  }
  L.sort((a, b) => a.t - b.t);
  liveTrim();
}

function onSnapshot(body) {
  state.snap = body;
  const t = Date.parse(body.time) / 1000;
  if (!isFinite(t)) return;
  const last = L.length ? L[L.length - 1] : null;
  if (last && t <= last.t) {
    // Same or older snapshot (reconnect): nothing new for the charts.
  } else {
    if (last && last.up !== null && t - last.t > 2.5 * intervalS()) {
      // Snapshots were missed (a restart, a stalled collector): no line
      // across the hole.
      L.push({ t: last.t + intervalS(), up: null, down: null, procs: null });
    }
    const m = new Map();
    for (const p of body.processes) {
      const r = (p.tx_bytes_per_sec || 0) + (p.rx_bytes_per_sec || 0);
      if (r > 0) m.set(procKey(p), { r, label: procLabel(p), app: appOf(p) });
    }
    L.push({ t, up: body.tx_bytes_per_sec || 0, down: body.rx_bytes_per_sec || 0, procs: m });
    liveTrim();
  }
  renderCards();
  if (state.window === "live") {
    state.rows = body.processes.map((p) => ({ ...p, key: procKey(p), tx_rate: p.tx_bytes_per_sec, rx_rate: p.rx_bytes_per_sec }));
    renderLiveCharts();
    renderTable();
  }
  if ((state.prefill === "failed" && Date.now() - state.prefillAt > 5000) || (last && last.up === null && state.prefill === "done")) prefillLive();
}

// gapNulls turns history points inside a daemon gap ([from, to] seconds)
// into not-measured ones (when they carry no bytes).
function inGap(gaps, t, step) {
  return gaps.some(([a, b]) => t < b && t + step > a);
}

function parseGaps(h) {
  return (h.gaps || []).map((g) => [Date.parse(g.since) / 1000, Date.parse(g.until) / 1000]).filter(([a, b]) => isFinite(a) && isFinite(b));
}

// prefillLive loads the last 5 minutes from the history API: the totals
// and, per process, the top processes' own series, so the stacked chart
// names real apps from the first frame (not one grey "other").
let prefilling = false;
async function prefillLive() {
  if (prefilling) return;
  prefilling = true;
  state.prefillAt = Date.now();
  try {
    const step = intervalS();
    const win = { since: "5m", step: step + "s" };
    const [h, top] = await Promise.all([getJSON("history", win), getJSON("processes", { since: "5m", top: PREFILL_PROCS })]);
    const per = await Promise.all(
      top.processes.map((p) => getJSON("history", { since: h.since, until: h.until, step: step + "s", pid: p.pid, comm: p.comm })),
    );
    fetchOK();
    const gaps = parseGaps(h);
    const pts = [];
    // The last step is still filling: the stream has it.
    for (let j = 0; j < h.points.length - 1; j++) {
      const hp = h.points[j];
      const t = hp.ts / 1000;
      const bytes = hp.tx_bytes + hp.rx_bytes;
      if (!bytes && inGap(gaps, t, h.step_seconds)) {
        pts.push({ t, up: null, down: null, procs: null });
        continue;
      }
      const m = new Map();
      top.processes.forEach((p, k) => {
        const q = per[k].points[j];
        const r = q ? (q.tx_bytes + q.rx_bytes) / h.step_seconds : 0;
        if (r > 0) m.set(procKey(p), { r, label: procLabel(p), app: appOf(p) });
      });
      pts.push({ t, up: hp.tx_bytes / h.step_seconds, down: hp.rx_bytes / h.step_seconds, procs: m });
    }
    state.liveGaps = gaps;
    state.liveUntil = Date.parse(h.until) / 1000;
    mergeHistory(pts);
    state.prefill = "done";
  } catch (e) {
    state.prefill = "failed";
    fetchFailed(e);
    // Try again (a busy database answers 503), also without new snapshots.
    setTimeout(() => state.prefill === "failed" && prefillLive(), 5000);
  } finally {
    prefilling = false;
  }
  if (state.window === "live") renderLiveCharts();
}

// stackGroups sums a point's processes per series of the current
// grouping: key -> {r, label}.
function stackGroups(m) {
  const out = new Map();
  for (const [k, v] of m) {
    const gk = state.group === "app" ? "app:" + v.app : k;
    const g = out.get(gk);
    if (g) g.r += v.r;
    else out.set(gk, { r: v.r, label: state.group === "app" ? v.app : v.label });
  }
  return out;
}

function stackTitle() {
  return state.group === "app" ? "Top apps" : "Top processes";
}

function renderLiveCharts() {
  const last = state.snap ? Date.parse(state.snap.time) / 1000 : state.liveUntil || Date.now() / 1000;
  const range = [last - LIVE_SPAN_S, last];
  const ts = L.map((p) => p.t);
  const up = L.map((p) => p.up);
  const down = L.map((p) => p.down);
  charts.total.setRange(range);
  charts.total.gaps = state.liveGaps;
  charts.procs.setRange(range);
  charts.procs.gaps = state.liveGaps;
  charts.total.set([ts, up, down]);
  const pending = state.prefill === "pending";
  $("chart-total-hint").textContent = pending ? "last 5 minutes, loading history…" : "last 5 minutes, live";
  $("chart-procs-title").textContent = stackTitle();
  $("chart-procs-hint").textContent = pending ? "loading history…" : state.prefill === "failed" ? "stacked, up + down (history unavailable: live only)" : "stacked, up + down";
  const agg = L.map((p) => (p.procs ? stackGroups(p.procs) : null));
  const sums = new Map();
  const labels = new Map();
  for (const m of agg) {
    if (!m) continue;
    for (const [k, v] of m) {
      sums.set(k, (sums.get(k) || 0) + v.r);
      labels.set(k, v.label);
    }
  }
  const top = [...sums.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_STACK).map((e) => e[0]);
  const vals = top.map((k) => agg.map((m) => (m ? (m.get(k) ? m.get(k).r : 0) : null)));
  const other = L.map((p, j) => (p.up === null ? null : Math.max(0, p.up + p.down - vals.reduce((a, v) => a + (v[j] || 0), 0))));
  const names = top.map((k) => labels.get(k));
  const withOther = other.some((v) => v > 0.5);
  charts.procs.set(ts, withOther ? [...names, "other"] : names, withOther ? [...vals, other] : vals);
  summarizeRate(charts.total, "Total rate, last 5 minutes", ts, up, down);
  summarizeStack(charts.procs, stackTitle() + ", last 5 minutes", names, vals);
}

function peak(a) {
  return a.reduce((m, v) => (v != null && v > m ? v : m), 0);
}

function lastVal(a) {
  for (let i = a.length - 1; i >= 0; i--) if (a[i] != null) return a[i];
  return null;
}

function summarizeRate(chart, what, ts, up, down) {
  if (!ts.length) return chart.summary(`${what}: no data yet`);
  const gaps = up.filter((v) => v === null).length;
  chart.summary(
    `${what}: upload latest ${fmtRate(lastVal(up))}, peak ${fmtRate(peak(up))}; download latest ${fmtRate(lastVal(down))}, peak ${fmtRate(peak(down))}` +
      (gaps || chart.gaps.length ? "; with gaps where the daemon was not counting" : ""),
  );
}

function summarizeStack(chart, what, names, vals) {
  if (!names.length) return chart.summary(`${what}: no traffic`);
  const avg = (a) => {
    const v = a.filter((x) => x != null);
    return v.length ? v.reduce((s, x) => s + x, 0) / v.length : 0;
  };
  chart.summary(`${what}, average rate: ` + names.map((n, i) => `${n} ${fmtRate(avg(vals[i]))}`).join(", "));
}

// renderCards: the rate cards say "now" only while the stream is live;
// when it is down they say so instead of showing the last rates.
function renderCards() {
  const s = state.snap;
  const down = !state.streamOK;
  for (const id of ["card-up", "card-down"]) $(id).closest(".card").classList.toggle("stale", down && !!s);
  if (!s) return;
  const sub = (dir) => {
    if (down) return "disconnected: no live rate";
    if (state.window === "live" || !state.hist) return "now";
    return `now · avg ${fmtRate((dir === "up" ? state.hist.h.tx_bytes : state.hist.h.rx_bytes) / state.hist.secs)}`;
  };
  $("card-up").textContent = down ? "–" : fmtRate(s.tx_bytes_per_sec);
  $("card-down").textContent = down ? "–" : fmtRate(s.rx_bytes_per_sec);
  $("card-up-sub").textContent = sub("up");
  $("card-down-sub").textContent = sub("down");
  if (state.window === "live") {
    $("card-sent-label").textContent = down ? "Sent since start (at disconnect)" : "Sent since start";
    $("card-recv-label").textContent = down ? "Received since start (at disconnect)" : "Received since start";
    $("card-sent").textContent = fmtBytes(s.tx_bytes);
    $("card-recv").textContent = fmtBytes(s.rx_bytes);
    $("card-sent").title = fmtExact(s.tx_bytes);
    $("card-recv").title = fmtExact(s.rx_bytes);
    $("card-procs").textContent = String(s.process_count);
  }
}

// --- history windows ---------------------------------------------------------

function windowParams() {
  if (state.window === "custom" && state.custom) return { since: state.custom.since, until: state.custom.until };
  if (state.window === "live") return { since: "5m" };
  return { since: state.window };
}

// remoteWindow is where the filter looks for remotes: the window, or in
// live the daemon's lifetime (the live table's totals are since start).
function remoteWindow() {
  if (state.window !== "live") return windowParams();
  const st = state.status && state.status.started;
  return { since: st && !st.startsWith("0001") ? st : "24h" };
}

function windowSeconds(h) {
  return Math.max(1, (Date.parse(h.until) - Date.parse(h.since)) / 1000);
}

function windowName() {
  if (state.window === "custom" && state.custom) {
    const f = (s) => (s ? new Date(s).toLocaleString() : "now");
    return `${f(state.custom.since)} – ${f(state.custom.until)}`;
  }
  return { "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days" }[state.window] || "";
}

// seriesWithGaps: per-step rates, null where the daemon was not counting.
function seriesWithGaps(h, gaps, f) {
  return h.points.map((p) => (p.tx_bytes + p.rx_bytes === 0 && inGap(gaps, p.ts / 1000, h.step_seconds) ? null : f(p) / h.step_seconds));
}

async function loadHistory() {
  const gen = state.gen;
  const wp = windowParams();
  try {
    const [h, procs] = await Promise.all([getJSON("history", wp), getJSON("processes", { ...wp, top: 1000 })]);
    if (gen !== state.gen) return;
    fetchOK();
    customError("");
    const secs = windowSeconds(h);
    state.hist = { h, procs, secs };
    const gaps = parseGaps(h);
    const ts = h.points.map((p) => p.ts / 1000);
    const range = [Date.parse(h.since) / 1000, Date.parse(h.until) / 1000];
    const up = seriesWithGaps(h, gaps, (p) => p.tx_bytes);
    const down = seriesWithGaps(h, gaps, (p) => p.rx_bytes);
    charts.total.setRange(range);
    charts.total.gaps = gaps;
    charts.total.set([ts, up, down]);
    $("chart-total-hint").textContent = `${windowName()}, per ${fmtDuration(h.step_seconds)}`;
    summarizeRate(charts.total, `Total rate, ${windowName()}, per ${fmtDuration(h.step_seconds)}`, ts, up, down);
    renderCards();
    $("card-sent-label").textContent = "Sent, " + windowName();
    $("card-recv-label").textContent = "Received, " + windowName();
    $("card-sent").textContent = fmtBytes(h.tx_bytes);
    $("card-recv").textContent = fmtBytes(h.rx_bytes);
    $("card-sent").title = fmtExact(h.tx_bytes);
    $("card-recv").title = fmtExact(h.rx_bytes);
    $("card-procs").textContent = String(procs.processes.length) + (procs.truncated ? "+" : "");
    state.rows = procs.processes.map((p) => ({ ...p, key: procKey(p), tx_rate: p.tx_bytes / secs, rx_rate: p.rx_bytes / secs }));
    renderTable();
    refreshRemoteMatch();
    // Stacked chart: the window's top processes' own series, summed per
    // app when grouped by app.
    const top = procs.processes.slice(0, PREFILL_PROCS);
    const series = await Promise.all(
      top.map((p) => getJSON("history", { since: h.since, until: h.until, step: h.step_seconds + "s", pid: p.pid, comm: p.comm })),
    );
    if (gen !== state.gen) return;
    const groups = new Map();
    top.forEach((p, i) => {
      const k = state.group === "app" ? "app:" + appOf(p) : procKey(p);
      const lab = state.group === "app" ? appOf(p) : procLabel(p);
      const v = series[i].points.map((q) => (q.tx_bytes + q.rx_bytes) / h.step_seconds);
      const g = groups.get(k);
      if (g) g.v = g.v.map((x, j) => x + v[j]);
      else groups.set(k, { lab, v, sum: 0 });
    });
    for (const g of groups.values()) g.sum = g.v.reduce((a, x) => a + x, 0);
    const gs = [...groups.values()].sort((a, b) => b.sum - a.sum).slice(0, TOP_STACK);
    const vals = gs.map((g) => g.v.map((x, j) => (up[j] === null ? null : x)));
    const other = h.points.map((p, j) => (up[j] === null ? null : Math.max(0, (p.tx_bytes + p.rx_bytes) / h.step_seconds - vals.reduce((a, v) => a + (v[j] || 0), 0))));
    const names = gs.map((g) => g.lab);
    const withOther = other.some((v) => v > 0);
    charts.procs.setRange(range);
    charts.procs.gaps = gaps;
    charts.procs.set(ts, withOther ? [...names, "other"] : names, withOther ? [...vals, other] : vals);
    $("chart-procs-title").textContent = stackTitle();
    $("chart-procs-hint").textContent = `stacked, up + down, ${windowName()}`;
    summarizeStack(charts.procs, `${stackTitle()}, ${windowName()}`, names, vals);
  } catch (e) {
    if (gen !== state.gen) return;
    if (state.window === "custom" && e.status === 400) {
      // The daemon refused the custom window: say so by the inputs and
      // go back to the last window that worked.
      customError(e.message);
      setWindow(state.prevWindow || "live");
      return;
    }
    fetchFailed(e);
  }
}

// --- custom window -------------------------------------------------------------

function customError(msg) {
  const el = $("custom-error");
  el.textContent = msg;
  el.hidden = !msg;
  for (const id of ["custom-since", "custom-until"]) {
    if (msg) $(id).setAttribute("aria-invalid", "true");
    else $(id).removeAttribute("aria-invalid");
  }
}

function fmtLocal(d) {
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// applyCustom checks the date fields and shows the window, or says what
// is wrong next to them (the shown window and its button stay as they
// were).
function applyCustom(from, to) {
  if (!from) return customError("Give a From date and time."), false;
  const s = new Date(from), u = to ? new Date(to) : new Date();
  if (isNaN(s)) return customError(`From ${JSON.stringify(from)} is not a date and time.`), false;
  if (to && isNaN(u)) return customError(`To ${JSON.stringify(to)} is not a date and time.`), false;
  if (s >= u) {
    customError(`From (${fmtLocal(s)}) is not before To (${fmtLocal(u)}): pick a From earlier than To${to ? "" : " (now)"}.`);
    return false;
  }
  customError("");
  state.custom = { since: s.toISOString(), until: to ? u.toISOString() : "", from, to };
  setWindow("custom");
  return true;
}

// --- process table -------------------------------------------------------------

// refreshRemoteMatch asks the daemon which processes talked to a remote
// whose address (or name) contains the filter text; debounced.
let remoteTimer = 0;
function refreshRemoteMatch() {
  clearTimeout(remoteTimer);
  const f = state.filter.trim();
  if (!f) {
    state.remoteMatch = null;
    return;
  }
  const gen = state.gen;
  remoteTimer = setTimeout(async () => {
    try {
      const r = await getJSON("processes", { ...remoteWindow(), remote: f, top: 1000 });
      if (gen !== state.gen || f !== state.filter.trim()) return;
      state.remoteMatch = { text: f, keys: new Set(r.processes.map(procKey)) };
      renderTable();
    } catch (e) {
      if (e.status !== 400) fetchFailed(e); // an older daemon without ?remote=: local matches only
    }
  }, 250);
}

function matches(r, f) {
  if (matchLocal(r, f)) return "";
  if (state.remoteMatch && state.remoteMatch.text.toLowerCase() === f && state.remoteMatch.keys.has(r.key)) return "remote";
  return null;
}

function cells(r, first) {
  return `<td class="comm">${first}</td><td class="num">${r.group ? r.children.length : r.pid}</td><td class="exe" title="${esc(r.exe)}">${esc(r.exe)}</td>` +
    `<td class="num up">${fmtRate(r.tx_rate)}</td><td class="num down">${fmtRate(r.rx_rate)}</td>` +
    `<td class="num" data-bytes="${r.tx_bytes}" title="${fmtExact(r.tx_bytes)}">${fmtBytes(r.tx_bytes)}</td>` +
    `<td class="num" data-bytes="${r.rx_bytes}" title="${fmtExact(r.rx_bytes)}">${fmtBytes(r.rx_bytes)}</td>` +
    `<td class="num">${r.remotes ?? "–"}</td>`;
}

function procRowHTML(r, level, why) {
  const tag = why === "remote" ? ` <span class="tag" title="a remote address or name matches the filter">remote</span>` : "";
  const lvl = level ? ` aria-level="${level}"` : "";
  return `<tr data-key="${esc(r.key)}" tabindex="-1"${lvl}${rowClass(r, level === 2 ? "child" : "")}>` +
    cells(r, (level === 2 ? `<span class="indent"></span>` : "") + esc(r.comm) + tag) + `</tr>`;
}

function appRowHTML(g, open, nshown) {
  const cls = ["app-row"];
  if (g.children.some((c) => c.key === state.selected)) cls.push("has-selected");
  const n = g.children.length;
  const label = `<span class="twisty" aria-hidden="true">${open ? "▾" : "▸"}</span>${esc(g.app)}` +
    (nshown < n ? ` <span class="hint">${nshown} of ${n}</span>` : n > 1 ? ` <span class="hint">${n} processes</span>` : "");
  return `<tr data-app="${esc(g.app)}" tabindex="-1" aria-level="1" aria-expanded="${open}" class="${cls.join(" ")}">` + cells(g, label) + `</tr>`;
}

let lastTableHTML = null;

function renderTable() {
  const f = state.filter.trim().toLowerCase();
  const live = state.window === "live";
  const shown = [];
  const why = new Map();
  for (const r of state.rows) {
    const m = matches(r, f);
    if (m !== null) {
      shown.push(r);
      why.set(r.key, m);
    }
  }
  // Live rates of a stream that is down are the last ones, not now's.
  const stale = live && !state.streamOK && !!state.snap;
  $("proc-table").classList.toggle("stale", stale);
  $("th-up").textContent = live ? (stale ? "Up/s at disconnect" : "Up/s") : "Avg up/s";
  $("th-down").textContent = live ? (stale ? "Down/s at disconnect" : "Down/s") : "Avg down/s";
  $("th-name").textContent = state.group === "app" ? "App / process" : "Process";
  $("th-pid").textContent = state.group === "app" ? "PIDs" : "PID";
  const what = state.group === "app" ? "Apps" : "Processes";
  $("table-title").textContent = live ? `${what} (totals since start)` : `${what}, ${windowName()}`;
  const table = $("proc-table");
  table.setAttribute("role", state.group === "app" ? "treegrid" : "grid");
  let html = "";
  let napps = 0;
  if (state.group === "app") {
    const groups = groupByApp(shown, state.sort);
    napps = groups.length;
    // All processes of an app count toward its numbers unless filtered.
    for (const g of groups) {
      const open = state.expanded.has(g.app) || (f !== "" && g.children.length < 4);
      html += appRowHTML(g, open, g.children.length);
      if (open) for (const c of g.children) html += procRowHTML(c, 2, why.get(c.key));
    }
  } else {
    for (const r of sortRows(shown, state.sort)) html += procRowHTML(r, 0, why.get(r.key));
  }
  const body = $("proc-body");
  const had = document.activeElement && body.contains(document.activeElement) ? rowId(document.activeElement.closest("tr")) : null;
  // Re-render only what changed (a row being clicked or focused stays the
  // same element while the numbers are the same).
  if (lastTableHTML !== html) {
    body.innerHTML = html;
    lastTableHTML = html;
  }
  rovingTabindex(had);
  $("table-empty").hidden = shown.length > 0;
  $("table-empty").textContent = f ? `Nothing matches “${state.filter.trim()}” in this window (names, paths, pids, services, containers and remote addresses are searched).` : "No process has sent or received anything in this window.";
  const total = live && state.snap ? state.snap.process_count : state.rows.length;
  const unit = state.group === "app" ? ` · ${napps} app${napps === 1 ? "" : "s"}` : "";
  $("table-count").textContent = (f ? `${shown.length} of ${total} processes` : `${total} processes`) + unit;
  // The totals row: what the filter leaves, summed.
  const foot = $("proc-foot");
  foot.hidden = !f || !shown.length;
  if (!foot.hidden) {
    const t = totals(shown);
    $("proc-foot").innerHTML = `<tr class="totals">` + cells({ ...t, exe: "", group: true, children: shown }, `Total of ${shown.length} shown`) + `</tr>`;
  }
  for (const th of document.querySelectorAll("#proc-table th[data-sort]")) {
    const k = th.dataset.sort;
    th.setAttribute("aria-sort", k === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
  if (state.pendingSel && state.rows.some((x) => x.key === state.pendingSel)) {
    const k = state.pendingSel;
    state.pendingSel = null;
    openDetail(k, false);
    return;
  }
  if (state.selected) {
    const r = state.rows.find((x) => x.key === state.selected);
    if (r) {
      state.selectedRow = r;
      renderDetailMeta(r);
    }
  }
}

function rowId(tr) {
  if (!tr) return null;
  return tr.dataset.key ? "p:" + tr.dataset.key : tr.dataset.app !== undefined ? "a:" + tr.dataset.app : null;
}

function rowById(id) {
  if (!id) return null;
  for (const tr of $("proc-body").rows) if (rowId(tr) === id) return tr;
  return null;
}

// rovingTabindex: one row of the table is in the tab order (the last one
// focused, else the first); the arrow keys move between rows. A row that
// had the focus before a re-render gets it back.
function rovingTabindex(hadFocus) {
  const body = $("proc-body");
  let tr = rowById(hadFocus) || rowById(state.focusKey) || body.rows[0];
  for (const r of body.rows) {
    const want = r === tr ? 0 : -1;
    if (r.tabIndex !== want) r.tabIndex = want;
  }
  if (tr && hadFocus && document.activeElement !== tr) tr.focus({ preventScroll: true });
}

function focusRow(tr) {
  if (!tr) return;
  for (const r of $("proc-body").rows) r.tabIndex = r === tr ? 0 : -1;
  state.focusKey = rowId(tr);
  tr.focus();
}

function toggleApp(app, open) {
  if (open === undefined) open = !state.expanded.has(app);
  if (open) state.expanded.add(app);
  else state.expanded.delete(app);
  state.focusKey = "a:" + app;
  renderTable();
  const tr = rowById("a:" + app);
  if (tr) focusRow(tr);
  saveURL();
}

function onTableKey(ev) {
  const tr = ev.target.closest("tr");
  if (!tr || !$("proc-body").contains(tr)) return;
  const rows = [...$("proc-body").rows];
  const i = rows.indexOf(tr);
  const app = tr.dataset.app;
  switch (ev.key) {
    case "ArrowDown":
      focusRow(rows[Math.min(rows.length - 1, i + 1)]);
      break;
    case "ArrowUp":
      focusRow(rows[Math.max(0, i - 1)]);
      break;
    case "Home":
      focusRow(rows[0]);
      break;
    case "End":
      focusRow(rows[rows.length - 1]);
      break;
    case "PageDown":
      focusRow(rows[Math.min(rows.length - 1, i + 10)]);
      break;
    case "PageUp":
      focusRow(rows[Math.max(0, i - 10)]);
      break;
    case "ArrowRight":
      if (app !== undefined) {
        if (tr.getAttribute("aria-expanded") !== "true") toggleApp(app, true);
        else focusRow(rows[i + 1]);
      }
      break;
    case "ArrowLeft":
      if (app !== undefined && tr.getAttribute("aria-expanded") === "true") toggleApp(app, false);
      else if (tr.getAttribute("aria-level") === "2") {
        for (let j = i - 1; j >= 0; j--) if (rows[j].dataset.app !== undefined) return ev.preventDefault(), focusRow(rows[j]);
      }
      break;
    case "Enter":
    case " ":
      if (app !== undefined) toggleApp(app);
      else openDetail(tr.dataset.key, true);
      break;
    default:
      return;
  }
  ev.preventDefault();
}

function rowClass(r, extra) {
  const cls = extra ? [extra] : [];
  if (r.key === state.selected) cls.push("selected");
  const rules = alertRules(r);
  if (rules.length) cls.push("alerting");
  let a = cls.length ? ` class="${cls.join(" ")}"` : "";
  a += ` aria-selected="${r.key === state.selected}"`;
  if (rules.length) a += ` title="alert firing: ${esc(rules.join(", "))}"`;
  return a;
}

function setGroup(g) {
  state.group = g;
  for (const b of document.querySelectorAll("[data-group]")) b.setAttribute("aria-pressed", String(b.dataset.group === g));
  renderTable();
  if (state.window === "live") renderLiveCharts();
  else loadHistory();
  saveURL();
}

// --- alerts: header badge, list with history, marked processes ---------------------

// alertRules names the firing alerts whose labels match a process (as
// `bwtracker top` does: app, comm, exe, service, container).
function alertRules(p) {
  const out = [];
  for (const a of state.alerts) {
    if (a.state !== "firing") continue;
    let compared = 0, ok = true;
    for (const [k, v] of Object.entries(a.labels || {})) {
      const have = { app: appOf(p), comm: p.comm, exe: p.exe, service: p.service, container: p.container }[k];
      if (have === undefined && !["app", "comm", "exe", "service", "container"].includes(k)) continue;
      compared++;
      ok = ok && (have || "") === v;
    }
    if (ok && compared > 0 && !out.includes(a.rule)) out.push(a.rule);
  }
  return out;
}

function fmtAlertValue(a, v) {
  if (a.kind === "new-app") return "–";
  return a.unit === "bytes/s" ? fmtRate(v) : fmtBytes(v);
}

function renderAlerts() {
  const firing = state.alerts.filter((a) => a.state === "firing");
  const badge = $("alerts-badge");
  badge.hidden = state.alerts.length === 0;
  badge.textContent = firing.length ? `${firing.length} alert${firing.length > 1 ? "s" : ""} firing` : "no alerts firing";
  badge.classList.toggle("none", firing.length === 0);
  const list = [...firing, ...state.alerts.filter((a) => a.state !== "firing")].slice(0, 100);
  const when = (t) => (t ? new Date(t).toLocaleString() : "–");
  const html = list
    .map(
      (a) => `<tr class="${esc(a.state)}"><td>${esc(a.state)}</td><td>${esc(a.rule)}</td>` +
        `<td>${esc(Object.entries(a.labels || {}).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(" "))}</td>` +
        `<td class="num">${fmtAlertValue(a, a.value)}</td><td class="num">${fmtAlertValue(a, a.threshold)}</td>` +
        `<td>${when(a.started_at)}</td><td>${when(a.ended_at)}</td></tr>`,
    )
    .join("");
  const body = $("alerts-body");
  if (body.innerHTML !== html) body.innerHTML = html;
}

async function refreshAlerts() {
  try {
    state.alerts = await getJSON("alerts", { all: 1 });
  } catch {
    state.alerts = []; // an older daemon, or no rules: no badge
  }
  renderAlerts();
  renderTable();
}

// --- detail panel ----------------------------------------------------------------

let detailTimer = 0;

function renderDetailMeta(r) {
  $("detail-title").textContent = procLabel(r);
  const items = [
    ["App", appOf(r)],
    ["Executable", r.exe || "–"],
    ["User id", String(r.uid ?? "–")],
    ...(r.service ? [["Service", r.service]] : []),
    ...(r.container ? [["Container", r.container]] : []),
    ["Sent", `${fmtBytes(r.tx_bytes)} (${fmtExact(r.tx_bytes)})`],
    ["Received", `${fmtBytes(r.rx_bytes)} (${fmtExact(r.rx_bytes)})`],
    [state.window === "live" ? "Rate now" : "Average rate", `↑ ${fmtRate(r.tx_rate)} ↓ ${fmtRate(r.rx_rate)}`],
  ];
  const html = items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("");
  if ($("detail-meta").innerHTML !== html) $("detail-meta").innerHTML = html;
}

function openDetail(key, focus) {
  const r = state.rows.find((x) => x.key === key);
  if (!r) return;
  state.selected = key;
  state.selectedRow = r;
  state.focusKey = "p:" + key;
  $("detail").hidden = false;
  document.body.classList.add("with-detail");
  placeDetail();
  renderDetailMeta(r);
  renderTable();
  loadDetail();
  saveURL();
  if (focus) $("detail-title").focus();
}

// The panel sits below the header, whose height depends on the width.
function placeDetail() {
  $("detail").style.top = Math.ceil(document.querySelector(".top").getBoundingClientRect().height) + "px";
}

function closeDetail() {
  const key = state.selected;
  state.selected = null;
  $("detail").hidden = true;
  document.body.classList.remove("with-detail");
  clearTimeout(detailTimer);
  renderTable();
  saveURL();
  // Back to the row the panel was opened from.
  const tr = rowById("p:" + key) || rowById("a:" + (state.selectedRow ? appOf(state.selectedRow) : ""));
  if (tr) focusRow(tr);
}

async function loadDetail() {
  clearTimeout(detailTimer);
  const r = state.selectedRow;
  if (!r || !state.selected) return;
  const key = state.selected;
  const gen = state.gen;
  const wp = windowParams();
  try {
    const who = { pid: r.pid, comm: r.comm };
    const [h, rem] = await Promise.all([
      getJSON("history", { ...wp, ...who }),
      getJSON("remotes", { ...remoteWindow(), ...who, by: "remote,protocol", top: 200 }),
    ]);
    if (key !== state.selected || gen !== state.gen) return;
    fetchOK();
    const gaps = parseGaps(h);
    const ts = h.points.map((p) => p.ts / 1000);
    const up = seriesWithGaps(h, gaps, (p) => p.tx_bytes);
    const down = seriesWithGaps(h, gaps, (p) => p.rx_bytes);
    charts.detail.gaps = gaps;
    charts.detail.setRange([Date.parse(h.since) / 1000, Date.parse(h.until) / 1000]);
    charts.detail.set([ts, up, down]);
    summarizeRate(charts.detail, `${procLabel(r)}, rate per ${fmtDuration(h.step_seconds)}`, ts, up, down);
    $("detail-chart-hint").textContent = `per ${fmtDuration(h.step_seconds)}`;
    $("detail-remotes-hint").textContent = state.window === "live" ? "since the daemon started" : windowName();
    const named = rem.remotes.some((x) => x.remote_name);
    $("remote-name-th").hidden = !named;
    const html = rem.remotes
      .map(
        (x) => `<tr tabindex="-1"><td class="remote">${esc(x.remote_ip || "(unknown)")}</td>${named ? `<td>${esc(x.remote_name || "")}</td>` : ""}<td>${esc(x.protocol || "")}</td>` +
          `<td class="num" title="${fmtExact(x.tx_bytes)}">${fmtBytes(x.tx_bytes)}</td><td class="num" title="${fmtExact(x.rx_bytes)}">${fmtBytes(x.rx_bytes)}</td></tr>`,
      )
      .join("");
    $("remote-body").innerHTML = html;
    if ($("remote-body").rows[0]) $("remote-body").rows[0].tabIndex = 0;
    $("remote-empty").hidden = rem.remotes.length > 0;
  } catch (e) {
    fetchFailed(e);
  }
  if (key === state.selected) detailTimer = setTimeout(loadDetail, state.window === "live" ? 5000 : 30000);
}

// listKeys: arrow keys between the rows of a plain list table (the
// detail's remotes, the overview's tables), one row in the tab order.
function listKeys(body) {
  body.addEventListener("keydown", (ev) => {
    const tr = ev.target.closest("tr");
    if (!tr) return;
    const rows = [...body.rows];
    const i = rows.indexOf(tr);
    const to = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: rows.length - 1 }[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    const n = rows[Math.max(0, Math.min(rows.length - 1, to))];
    for (const r of rows) r.tabIndex = r === n ? 0 : -1;
    n.focus();
  });
}

// --- status footer -------------------------------------------------------------

async function refreshStatus() {
  try {
    const s = await getJSON("status");
    state.status = s;
    fetchOK();
    const drops = Object.values(s.drops || {}).reduce((a, b) => a + b, 0);
    const parts = [
      `bwtracker ${s.version || ""}`.trim(),
      s.hook && `hook ${s.hook}`,
      s.kernel && `kernel ${s.kernel}`,
      s.interval_ms && `interval ${fmtDuration(s.interval_ms / 1000)}`,
      s.uptime_seconds && `up ${fmtDuration(s.uptime_seconds)}`,
      s.db_size_bytes && `database ${fmtBytes(s.db_size_bytes)}`,
      `drops ${drops}`,
    ].filter(Boolean);
    $("footer").textContent = parts.join(" · ");
    $("footer").classList.toggle("warn", drops > 0);
  } catch (e) {
    fetchFailed(e);
  }
}

// --- window switching ------------------------------------------------------------

let histTimer = 0;

function setWindow(w) {
  if (w !== state.window && state.window !== "custom") state.prevWindow = state.window;
  state.window = w;
  state.gen++;
  clearInterval(histTimer);
  for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", String(b.dataset.window === w));
  if (w !== "custom") customError("");
  $("custom").hidden = w !== "custom" && !$("custom-error").textContent;
  state.hist = null;
  if (w === "live") {
    state.rows = state.snap ? state.snap.processes.map((p) => ({ ...p, key: procKey(p), tx_rate: p.tx_bytes_per_sec, rx_rate: p.rx_bytes_per_sec })) : [];
    renderCards();
    renderLiveCharts();
    renderTable();
    refreshRemoteMatch();
    if (state.prefill !== "done" || L.length < 10) prefillLive();
  } else {
    loadHistory();
    if (w !== "custom") histTimer = setInterval(loadHistory, 30000);
  }
  if (state.selected) loadDetail();
  saveURL();
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// --- wiring ------------------------------------------------------------------------

function init() {
  tokenFromHash();
  const u = readURL();
  charts.total = new RateChart($("chart-total"), 220);
  charts.procs = new StackChart($("chart-procs"), 220);
  charts.detail = new RateChart($("chart-detail"), 180);
  charts.overview = new BarChart($("chart-ov"), 220);
  overview = new Overview(charts.overview);
  if (u.ov === "month") overview.period = "month";
  if (u.g === "process") state.group = "process";
  for (const b of document.querySelectorAll("[data-group]")) b.setAttribute("aria-pressed", String(b.dataset.group === state.group));
  if (u.open) for (const a of u.open.split(",")) if (a) state.expanded.add(a);
  if (u.q) {
    state.filter = u.q;
    $("filter").value = u.q;
  }
  if (u.sel) state.pendingSel = u.sel;
  renderLiveCharts();
  charts.detail.set([[], [], []]);

  for (const b of document.querySelectorAll("[data-window]")) {
    b.addEventListener("click", () => {
      if (b.dataset.window === "custom") {
        $("custom").hidden = false;
        if (!$("custom-since").value) {
          const now = new Date();
          $("custom-since").value = localInput(new Date(now - 86400000));
          $("custom-until").value = localInput(now);
        }
        $("custom-since").focus();
        return;
      }
      setWindow(b.dataset.window);
    });
  }
  $("custom").addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyCustom($("custom-since").value, $("custom-until").value);
  });
  for (const id of ["custom-since", "custom-until"]) $(id).addEventListener("input", () => $("custom-error").textContent && customError(""));
  for (const th of document.querySelectorAll("#proc-table th[data-sort]")) {
    th.tabIndex = 0;
    const go = () => {
      const k = th.dataset.sort;
      if (state.sort.key === k) state.sort.dir *= -1;
      else state.sort = { key: k, dir: k === "comm" || k === "exe" || k === "pid" ? 1 : -1 };
      renderTable();
    };
    th.addEventListener("click", go);
    th.addEventListener("keydown", (ev) => (ev.key === "Enter" || ev.key === " ") && (ev.preventDefault(), go()));
  }
  $("filter").addEventListener("input", (ev) => {
    state.filter = ev.target.value;
    renderTable();
    refreshRemoteMatch();
    saveURL();
  });
  for (const b of document.querySelectorAll("[data-group]")) b.addEventListener("click", () => setGroup(b.dataset.group));
  for (const b of document.querySelectorAll("[data-ov]")) {
    b.addEventListener("click", () => {
      overview.period = b.dataset.ov;
      overview.load();
      saveURL();
    });
  }
  const body = $("proc-body");
  body.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (!tr) return;
    if (tr.dataset.app !== undefined) toggleApp(tr.dataset.app);
    else if (tr.dataset.key) openDetail(tr.dataset.key, false);
  });
  body.addEventListener("keydown", onTableKey);
  body.addEventListener("focusin", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr) state.focusKey = rowId(tr);
  });
  listKeys($("remote-body"));
  listKeys($("ov-remotes-body"));
  listKeys($("ov-periods-body"));
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (ev) => ev.key === "Escape" && state.selected && closeDetail());
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setToken($("token-input").value.trim());
    $("token-input").value = "";
    state.fetchErr = null;
    state.streamMsg = null;
    renderBanner();
    stream.start();
    refreshStatus();
    setWindow(state.window);
    overview.load();
  });
  new ResizeObserver(placeDetail).observe(document.querySelector(".top"));
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => Object.values(charts).forEach((c) => c.restyle()));

  const stream = new LiveStream({ onSnapshot, onState: onStreamState });
  stream.start();
  refreshStatus();
  setInterval(refreshStatus, 30000);
  $("alerts-badge").addEventListener("click", () => {
    const p = $("alerts-panel");
    p.hidden = !p.hidden;
    $("alerts-badge").setAttribute("aria-expanded", String(!p.hidden));
  });
  refreshAlerts();
  setInterval(refreshAlerts, 5000);
  prefillLive();
  overview.load();
  setInterval(() => overview.load(), 300000);
  // The window from the URL (a custom one is checked like a submitted one).
  if (u.w === "custom" && u.from) {
    $("custom-since").value = u.from;
    $("custom-until").value = u.to || "";
    $("custom").hidden = false;
    if (!applyCustom(u.from, u.to || "")) saveURL();
  } else if (WINDOWS[u.w]) setWindow(u.w);
  else saveURL();
}

init();
