// The view's state in the address bar's fragment, so a view can be
// bookmarked and shared and a reload restores it:
//
//   #w=1h&q=curl&sel=4242:1000000:curl&g=app&open=firefox&ov=month
//   #w=custom&from=2026-12-01T20:30&to=2026-12-02T08:00
//
// w: window (live, 1h, 24h, 7d, custom), from/to: the custom window as
// the date fields give it (local time), q: the table filter, sel: the
// process whose details are open, g: table grouping (app, process),
// open: expanded apps (comma-separated), ov: overview period (day, month).
// The fragment never reaches the server. A one-time `#token=` (api.js)
// is taken out and the rest kept.

const KEYS = ["w", "from", "to", "q", "sel", "g", "open", "ov"];

export function readURL() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ""));
  const out = {};
  for (const k of KEYS) {
    const v = p.get(k);
    if (v !== null && v !== "") out[k] = v;
  }
  return out;
}

// writeURL replaces the fragment (no new history entry per keystroke).
export function writeURL(st) {
  const p = new URLSearchParams();
  for (const k of KEYS) {
    const v = st[k];
    if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  }
  const h = p.toString();
  const url = location.pathname + location.search + (h ? "#" + h : "");
  if (url !== location.pathname + location.search + location.hash) history.replaceState(null, "", url);
}
