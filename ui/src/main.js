// bwtracker dashboard: live view from the SSE stream, history windows from
// /api/history and /api/processes, a sortable/filterable process table and a
// per-process detail panel.
import "./style.css";
import { getJSON, LiveStream, setToken, tokenFromHash, HTTPError } from "./api.js";
import { RateChart, StackChart } from "./charts.js";
import { esc, fmtBytes, fmtDuration, fmtExact, fmtRate } from "./format.js";

const $ = (id) => document.getElementById(id);

const LIVE_SPAN_S = 300; // the live window: 5 minutes
const TOP_STACK = 5; // processes in the stacked chart
const WINDOWS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400 };

const state = {
  window: "live",
  custom: null, // {since, until} ISO strings
  snap: null, // last stream body
  status: null,
  live: { ts: [], up: [], down: [], procs: [] }, // procs[i]: Map key -> rate
  hist: null, // {rows, seconds, totals}
  rows: [], // the table's rows for the current window
  sort: { key: "rate", dir: -1 },
  filter: "",
  selected: null, // process key
  gen: 0, // bumps on every window change; stale responses are dropped
  streamOK: false,
  fetchErr: null,
  streamMsg: null,
  alerts: [], // GET /api/alerts?all=1, newest first
};

const charts = {};

function procKey(p) {
  return `${p.pid}:${p.start_ns}:${p.comm}`;
}

function procLabel(p) {
  return `${p.comm || "?"} (${p.pid})`;
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
      state.streamMsg = null;
      setConn("live", "live");
      renderBanner();
      refreshStatus();
    }
    return;
  }
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

function onSnapshot(body) {
  state.snap = body;
  const t = Date.parse(body.time) / 1000;
  const L = state.live;
  if (!isFinite(t)) return;
  if (L.ts.length && t <= L.ts[L.ts.length - 1]) {
    // Same or older snapshot (reconnect): replace the last point's processes only.
  } else {
    const m = new Map();
    for (const p of body.processes) {
      const r = (p.tx_bytes_per_sec || 0) + (p.rx_bytes_per_sec || 0);
      if (r > 0) m.set(procKey(p), { r, label: procLabel(p) });
    }
    L.ts.push(t);
    L.up.push(body.tx_bytes_per_sec || 0);
    L.down.push(body.rx_bytes_per_sec || 0);
    L.procs.push(m);
    while (L.ts.length && L.ts[0] < t - LIVE_SPAN_S) {
      L.ts.shift();
      L.up.shift();
      L.down.shift();
      L.procs.shift();
    }
  }
  renderCardsLive();
  if (state.window === "live") {
    state.rows = body.processes.map((p) => ({ ...p, key: procKey(p), tx_rate: p.tx_bytes_per_sec, rx_rate: p.rx_bytes_per_sec }));
    renderLiveCharts();
    renderTable();
  }
}

async function prefillLive() {
  const gen = state.gen;
  try {
    const step = state.snap ? Math.max(1, Math.round(state.snap.interval_ms / 1000)) : 1;
    const h = await getJSON("history", { since: "5m", step: step + "s" });
    fetchOK();
    if (gen !== state.gen) return;
    const L = state.live;
    const first = L.ts.length ? L.ts[0] : Infinity;
    const pts = h.points.slice(0, -1).filter((p) => p.ts / 1000 < first);
    L.ts.unshift(...pts.map((p) => p.ts / 1000));
    L.up.unshift(...pts.map((p) => p.tx_bytes / h.step_seconds));
    L.down.unshift(...pts.map((p) => p.rx_bytes / h.step_seconds));
    L.procs.unshift(...pts.map(() => new Map()));
    renderLiveCharts();
  } catch (e) {
    fetchFailed(e);
  }
}

function renderLiveCharts() {
  const L = state.live;
  charts.total.set([L.ts.slice(), L.up.slice(), L.down.slice()]);
  $("chart-total-hint").textContent = "last 5 minutes, live";
  // Top processes over the buffered window.
  const sums = new Map();
  const labels = new Map();
  for (const m of L.procs) {
    for (const [k, v] of m) {
      sums.set(k, (sums.get(k) || 0) + v.r);
      labels.set(k, v.label);
    }
  }
  const top = [...sums.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_STACK).map((e) => e[0]);
  const vals = top.map((k) => L.procs.map((m) => (m.get(k) ? m.get(k).r : 0)));
  const other = L.ts.map((_, j) => Math.max(0, L.up[j] + L.down[j] - vals.reduce((a, v) => a + v[j], 0)));
  charts.procs.set(L.ts.slice(), [...top.map((k) => labels.get(k)), "other"], [...vals, other]);
}

function renderCardsLive() {
  const s = state.snap;
  if (!s) return;
  $("card-up").textContent = fmtRate(s.tx_bytes_per_sec);
  $("card-down").textContent = fmtRate(s.rx_bytes_per_sec);
  if (state.window === "live") {
    $("card-up-sub").textContent = "now";
    $("card-down-sub").textContent = "now";
    $("card-sent-label").textContent = "Sent since start";
    $("card-recv-label").textContent = "Received since start";
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

async function loadHistory() {
  const gen = state.gen;
  const wp = windowParams();
  try {
    const [h, procs] = await Promise.all([getJSON("history", wp), getJSON("processes", { ...wp, top: 1000 })]);
    if (gen !== state.gen) return;
    fetchOK();
    const secs = windowSeconds(h);
    state.hist = { h, procs, secs };
    const ts = h.points.map((p) => p.ts / 1000);
    charts.total.set([ts, h.points.map((p) => p.tx_bytes / h.step_seconds), h.points.map((p) => p.rx_bytes / h.step_seconds)]);
    $("chart-total-hint").textContent = `${windowName()}, per ${fmtDuration(h.step_seconds)}`;
    $("card-up-sub").textContent = `now · avg ${fmtRate(h.tx_bytes / secs)}`;
    $("card-down-sub").textContent = `now · avg ${fmtRate(h.rx_bytes / secs)}`;
    $("card-sent-label").textContent = "Sent, " + windowName();
    $("card-recv-label").textContent = "Received, " + windowName();
    $("card-sent").textContent = fmtBytes(h.tx_bytes);
    $("card-recv").textContent = fmtBytes(h.rx_bytes);
    $("card-sent").title = fmtExact(h.tx_bytes);
    $("card-recv").title = fmtExact(h.rx_bytes);
    $("card-procs").textContent = String(procs.processes.length) + (procs.truncated ? "+" : "");
    state.rows = procs.processes.map((p) => ({ ...p, key: procKey(p), tx_rate: p.tx_bytes / secs, rx_rate: p.rx_bytes / secs }));
    renderTable();
    // Stacked chart: the window's top processes, one series each.
    const top = procs.processes.slice(0, TOP_STACK);
    const series = await Promise.all(
      top.map((p) => getJSON("history", { ...wp, since: h.since, until: h.until, step: h.step_seconds + "s", pid: p.pid, comm: p.comm })),
    );
    if (gen !== state.gen) return;
    const vals = series.map((s) => s.points.map((p) => (p.tx_bytes + p.rx_bytes) / s.step_seconds));
    const other = h.points.map((p, j) => Math.max(0, (p.tx_bytes + p.rx_bytes) / h.step_seconds - vals.reduce((a, v) => a + (v[j] || 0), 0)));
    charts.procs.set(ts, [...top.map(procLabel), "other"], [...vals, other]);
  } catch (e) {
    fetchFailed(e);
  }
}

// --- process table -------------------------------------------------------------

function sortRows(rows) {
  const { key, dir } = state.sort;
  const val = (r) => (key === "rate" ? (r.tx_rate || 0) + (r.rx_rate || 0) : r[key]);
  return rows.slice().sort((a, b) => {
    const va = val(a), vb = val(b);
    let c = typeof va === "string" || typeof vb === "string" ? String(va ?? "").localeCompare(String(vb ?? "")) : (va || 0) - (vb || 0);
    if (c === 0) c = (a.tx_bytes + a.rx_bytes - (b.tx_bytes + b.rx_bytes)) * -1 || a.pid - b.pid;
    else c *= dir;
    return c;
  });
}

function renderTable() {
  const f = state.filter.trim().toLowerCase();
  const rows = sortRows(state.rows).filter(
    (r) =>
      !f ||
      r.comm.toLowerCase().includes(f) ||
      (r.exe || "").toLowerCase().includes(f) ||
      String(r.pid).startsWith(f) ||
      (r.service || "").toLowerCase().includes(f) ||
      (r.container || "").toLowerCase().includes(f),
  );
  const live = state.window === "live";
  $("th-up").textContent = live ? "Up/s" : "Avg up/s";
  $("th-down").textContent = live ? "Down/s" : "Avg down/s";
  $("table-title").textContent = live ? "Processes (totals since start)" : "Processes, " + windowName();
  const html = rows
    .map(
      (r) => `<tr data-key="${esc(r.key)}" tabindex="0"${rowClass(r)}>` +
        `<td class="comm">${esc(r.comm)}</td><td class="num">${r.pid}</td><td class="exe" title="${esc(r.exe)}">${esc(r.exe)}</td>` +
        `<td class="num up">${fmtRate(r.tx_rate)}</td><td class="num down">${fmtRate(r.rx_rate)}</td>` +
        `<td class="num" data-bytes="${r.tx_bytes}" title="${fmtExact(r.tx_bytes)}">${fmtBytes(r.tx_bytes)}</td>` +
        `<td class="num" data-bytes="${r.rx_bytes}" title="${fmtExact(r.rx_bytes)}">${fmtBytes(r.rx_bytes)}</td>` +
        `<td class="num">${r.remotes ?? "–"}</td></tr>`,
    )
    .join("");
  const body = $("proc-body");
  if (body.innerHTML !== html) body.innerHTML = html;
  $("table-empty").hidden = rows.length > 0;
  const total = live && state.snap ? state.snap.process_count : state.rows.length;
  $("table-count").textContent = f ? `${rows.length} of ${total}` : `${total}`;
  for (const th of document.querySelectorAll("#proc-table th[data-sort]")) {
    const k = th.dataset.sort;
    th.setAttribute("aria-sort", k === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
  if (state.selected) {
    const r = state.rows.find((x) => x.key === state.selected);
    if (r) {
      state.selectedRow = r;
      renderDetailMeta(r);
    }
  }
}

function rowClass(r) {
  const cls = [];
  if (r.key === state.selected) cls.push("selected");
  const rules = alertRules(r);
  if (rules.length) cls.push("alerting");
  let a = cls.length ? ` class="${cls.join(" ")}"` : "";
  if (r.key === state.selected) a += ' aria-selected="true"';
  if (rules.length) a += ` title="alert firing: ${esc(rules.join(", "))}"`;
  return a;
}

// --- alerts: header badge, list with history, marked processes ---------------------

function appLabel(exe, comm) {
  if (exe) {
    const b = exe.replace(/ \(deleted\)$/, "").split("/").pop();
    if (b) return b;
  }
  return comm || "unknown";
}

// alertRules names the firing alerts whose labels match a process (as
// `bwtracker top` does: app, comm, exe, service, container).
function alertRules(p) {
  const out = [];
  for (const a of state.alerts) {
    if (a.state !== "firing") continue;
    let compared = 0, ok = true;
    for (const [k, v] of Object.entries(a.labels || {})) {
      const have = { app: appLabel(p.exe, p.comm), comm: p.comm, exe: p.exe, service: p.service, container: p.container }[k];
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

function openDetail(key) {
  const r = state.rows.find((x) => x.key === key);
  if (!r) return;
  state.selected = key;
  state.selectedRow = r;
  $("detail").hidden = false;
  document.body.classList.add("with-detail");
  placeDetail();
  renderDetailMeta(r);
  renderTable();
  loadDetail();
}

// The panel sits below the header, whose height depends on the width.
function placeDetail() {
  $("detail").style.top = Math.ceil(document.querySelector(".top").getBoundingClientRect().height) + "px";
}

function closeDetail() {
  state.selected = null;
  $("detail").hidden = true;
  document.body.classList.remove("with-detail");
  clearTimeout(detailTimer);
  renderTable();
}

async function loadDetail() {
  clearTimeout(detailTimer);
  const r = state.selectedRow;
  if (!r || !state.selected) return;
  const key = state.selected;
  const gen = state.gen;
  const wp = windowParams();
  // Live: the chart covers the live window, the remotes the daemon's lifetime
  // (the table's totals are "since start" too).
  let remoteWindow = wp;
  if (state.window === "live") remoteWindow = { since: state.status && state.status.started && !state.status.started.startsWith("0001") ? state.status.started : "24h" };
  try {
    const who = { pid: r.pid, comm: r.comm };
    const [h, rem] = await Promise.all([
      getJSON("history", { ...wp, ...who }),
      getJSON("remotes", { ...remoteWindow, ...who, by: "remote,protocol", top: 200 }),
    ]);
    if (key !== state.selected || gen !== state.gen) return;
    fetchOK();
    charts.detail.set([h.points.map((p) => p.ts / 1000), h.points.map((p) => p.tx_bytes / h.step_seconds), h.points.map((p) => p.rx_bytes / h.step_seconds)]);
    $("detail-chart-hint").textContent = `per ${fmtDuration(h.step_seconds)}`;
    $("detail-remotes-hint").textContent = state.window === "live" ? "since the daemon started" : windowName();
    const html = rem.remotes
      .map(
        (x) => `<tr><td class="remote">${esc(x.remote_ip || "(unknown)")}</td><td>${esc(x.protocol || "")}</td>` +
          `<td class="num" title="${fmtExact(x.tx_bytes)}">${fmtBytes(x.tx_bytes)}</td><td class="num" title="${fmtExact(x.rx_bytes)}">${fmtBytes(x.rx_bytes)}</td></tr>`,
      )
      .join("");
    $("remote-body").innerHTML = html;
    $("remote-empty").hidden = rem.remotes.length > 0;
  } catch (e) {
    fetchFailed(e);
  }
  if (key === state.selected) detailTimer = setTimeout(loadDetail, state.window === "live" ? 5000 : 30000);
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
  state.window = w;
  state.gen++;
  clearInterval(histTimer);
  for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", String(b.dataset.window === w));
  $("custom").hidden = w !== "custom";
  if (w === "live") {
    state.rows = state.snap ? state.snap.processes.map((p) => ({ ...p, key: procKey(p), tx_rate: p.tx_bytes_per_sec, rx_rate: p.rx_bytes_per_sec })) : [];
    renderCardsLive();
    renderLiveCharts();
    renderTable();
    if (state.live.ts.length < 10) prefillLive();
  } else {
    loadHistory();
    if (w !== "custom") histTimer = setInterval(loadHistory, 30000);
  }
  if (state.selected) loadDetail();
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// --- wiring ------------------------------------------------------------------------

function init() {
  tokenFromHash();
  charts.total = new RateChart($("chart-total"), 220);
  charts.procs = new StackChart($("chart-procs"), 220);
  charts.detail = new RateChart($("chart-detail"), 180);
  charts.total.set([[], [], []]);
  charts.procs.set([], ["other"], [[]]);

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
    const s = $("custom-since").value, u = $("custom-until").value;
    if (!s) return;
    state.custom = { since: new Date(s).toISOString(), until: u ? new Date(u).toISOString() : "" };
    setWindow("custom");
  });
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
  });
  const body = $("proc-body");
  body.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-key]");
    if (tr) openDetail(tr.dataset.key);
  });
  body.addEventListener("keydown", (ev) => {
    const tr = ev.target.closest("tr[data-key]");
    if (tr && ev.key === "Enter") openDetail(tr.dataset.key);
  });
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
}

init();
