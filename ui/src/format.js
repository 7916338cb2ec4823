// Human units, IEC (1 KiB = 1024 B), as nethogs and vnStat users expect.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

export function fmtBytes(n) {
  if (n == null || !isFinite(n)) return "–";
  const neg = n < 0;
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  const s = i === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return (neg ? "-" : "") + s + " " + UNITS[i];
}

export function fmtRate(n) {
  if (n == null || !isFinite(n)) return "–";
  return fmtBytes(n) + "/s";
}

// Exact byte count with thousands separators (for tooltips).
export function fmtExact(n) {
  return Number(n).toLocaleString("en-US") + " B";
}

export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

// Process names and paths come from whatever runs on the machine: escape.
export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
}
