// The process table's model: the app of a process, the filter, grouping
// by app (rows expanding to their processes), sorting and the totals of
// what is shown. Pure functions over plain rows; main.js renders.

// appOf names a row's app: the daemon's `app` field once it has one
// (internal/procinfo's app rule), else the executable's base name, else
// the kernel's comm (what `bwtracker top` and the alert labels use).
export function appOf(r) {
  if (r.app) return r.app;
  if (r.exe) {
    const b = r.exe.replace(/ \(deleted\)$/, "").split("/").pop();
    if (b) return b;
  }
  return r.comm || "unknown";
}

// matchLocal: the filter text against a process row's own fields.
export function matchLocal(r, f) {
  if (!f) return true;
  const has = (s) => (s || "").toLowerCase().includes(f);
  return has(r.comm) || has(r.exe) || String(r.pid).startsWith(f) || has(r.service) || has(r.container) || has(appOf(r)) || has(r.remote_name);
}

function sumInto(a, r) {
  a.tx_rate += r.tx_rate || 0;
  a.rx_rate += r.rx_rate || 0;
  a.tx_bytes += r.tx_bytes || 0;
  a.rx_bytes += r.rx_bytes || 0;
  a.remotes += r.remotes || 0;
}

export function totals(rows) {
  const t = { tx_rate: 0, rx_rate: 0, tx_bytes: 0, rx_bytes: 0, remotes: 0 };
  for (const r of rows) sumInto(t, r);
  return t;
}

function sortValue(r, key) {
  if (key === "rate") return (r.tx_rate || 0) + (r.rx_rate || 0);
  if (key === "comm") return r.group ? r.app : r.comm;
  if (key === "pid" && r.group) return r.children.length;
  return r[key];
}

export function sortRows(rows, { key, dir }) {
  return rows.slice().sort((a, b) => {
    const va = sortValue(a, key), vb = sortValue(b, key);
    let c = typeof va === "string" || typeof vb === "string" ? String(va ?? "").localeCompare(String(vb ?? "")) : (va || 0) - (vb || 0);
    if (c === 0) c = (a.tx_bytes + a.rx_bytes - (b.tx_bytes + b.rx_bytes)) * -1 || (a.pid || 0) - (b.pid || 0) || String(a.key).localeCompare(String(b.key));
    else c *= dir;
    return c;
  });
}

// groupByApp turns process rows into app rows ({group: true, app, key:
// "app:NAME", children, sums}); each keeps its processes sorted.
export function groupByApp(rows, sort) {
  const m = new Map();
  for (const r of rows) {
    const a = appOf(r);
    let g = m.get(a);
    if (!g) {
      g = { group: true, app: a, key: "app:" + a, children: [], tx_rate: 0, rx_rate: 0, tx_bytes: 0, rx_bytes: 0, remotes: 0, exes: new Set() };
      m.set(a, g);
    }
    g.children.push(r);
    sumInto(g, r);
    if (r.exe) g.exes.add(r.exe);
  }
  const out = [...m.values()];
  for (const g of out) {
    g.children = sortRows(g.children, sort);
    g.exe = g.exes.size === 1 ? [...g.exes][0] : g.exes.size ? `${g.exes.size} executables` : "";
  }
  return sortRows(out, sort);
}
