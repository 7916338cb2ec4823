// The history overview, vnstati-like: traffic per local day (30 days) or
// month (12 months) stacked by app, the top remotes (with their names
// where the daemon knows them) and the locality split (loopback / LAN /
// internet, from the remotes' `scope`). Fields a daemon does not return
// yet (remote_name, scope, /api/periods itself) are left out with a note,
// never an error.
import { getJSON } from "./api.js";
import { esc, fmtBytes, fmtExact } from "./format.js";
import { PALETTE } from "./charts.js";

const $ = (id) => document.getElementById(id);

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const SCOPES = ["loopback", "lan", "internet", "multicast", "unknown"];
const SCOPE_NAMES = { loopback: "this host", lan: "local network", internet: "internet", multicast: "multicast", unknown: "unknown" };

function zone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

// periodLabel names a period by its start in the zone the server used:
// the start is that zone's midnight, so the browser's own date is it
// when the zones agree (they do: we send ours).
function periodLabel(kind, iso) {
  const d = new Date(iso);
  if (kind === "month") return `${MONTHS[d.getMonth()]} ${String(d.getFullYear()).slice(2)}`;
  return `${DAYS[d.getDay()]} ${d.getDate()}`;
}

export class Overview {
  constructor(chart) {
    this.chart = chart;
    this.period = "day";
    this.gen = 0;
  }

  async load() {
    const gen = ++this.gen;
    const kind = this.period;
    const since = kind === "month" ? "365d" : "30d";
    $("ov-unit").textContent = kind;
    for (const b of document.querySelectorAll("[data-ov]")) b.setAttribute("aria-pressed", String(b.dataset.ov === kind));
    let per = null;
    let note = "";
    try {
      per = await getJSON("periods", { period: kind, tz: zone(), top: 6 });
    } catch (e) {
      if (e.status === 404) note = "This daemon has no /api/periods (upgrade bwtracker for the per-day chart).";
      else note = "Could not load the overview: " + e.message;
    }
    let rem = null;
    try {
      rem = await getJSON("remotes", { since, top: 1000 });
    } catch (e) {
      note = note || "Could not load the remotes: " + e.message;
    }
    // The locality split of the whole window: /api/summary's scopes (a
    // daemon with scopes), else the remotes' own scope fields.
    let scopes = null;
    try {
      const sum = await getJSON("summary", { since });
      if (Array.isArray(sum.scopes)) scopes = sum.scopes;
    } catch {
      /* the remotes may still carry scopes */
    }
    if (gen !== this.gen) return;
    $("ov-note").textContent = note;
    $("ov-note").hidden = !note;
    if (per) this.renderPeriods(per);
    if (rem) this.renderRemotes(rem);
    if (scopes || rem) this.renderScopes(scopes || rem.remotes);
  }

  renderPeriods(per) {
    const labels = [...per.groups];
    const hasOther = per.periods.some((p) => p.groups.some((g) => g.name === "other"));
    if (hasOther) labels.push("other");
    const xl = per.periods.map((p) => periodLabel(per.period, p.start));
    const vals = labels.map((n) => per.periods.map((p) => {
      const g = p.groups.find((x) => x.name === n);
      return g ? g.tx_bytes + g.rx_bytes : 0;
    }));
    this.chart.setBars(xl, labels, vals);
    const total = per.periods.reduce((a, p) => a + p.tx_bytes + p.rx_bytes, 0);
    const busiest = per.periods.reduce((b, p, i) => (p.tx_bytes + p.rx_bytes > (b ? b.v : 0) ? { i, v: p.tx_bytes + p.rx_bytes } : b), null);
    const by = per.by === "app" ? "app" : "program";
    $("ov-hint").textContent = `${per.periods.length} ${per.period}s, ${fmtBytes(total)} in total, by ${by} (${per.tz})`;
    this.chart.summary(
      `Traffic per ${per.period} over the last ${per.periods.length} ${per.period}s, stacked by ${by}: ${fmtBytes(total)} in total` +
        (busiest ? `; the busiest ${per.period} was ${xl[busiest.i]} with ${fmtBytes(busiest.v)}` : "") +
        (per.groups.length ? `; top ${by}s: ${per.groups.slice(0, 3).join(", ")}` : ""),
    );
    // The table beside it: the accessible alternative and vnStat's view.
    const rows = per.periods
      .slice()
      .reverse()
      .map((p, i) => {
        const top = p.groups.filter((g) => g.name !== "other").sort((a, b) => b.tx_bytes + b.rx_bytes - (a.tx_bytes + a.rx_bytes))[0];
        return `<tr tabindex="-1"><td>${esc(xl[xl.length - 1 - i])}</td><td class="num" title="${fmtExact(p.tx_bytes)}">${fmtBytes(p.tx_bytes)}</td>` +
          `<td class="num" title="${fmtExact(p.rx_bytes)}">${fmtBytes(p.rx_bytes)}</td><td class="num">${fmtBytes(p.tx_bytes + p.rx_bytes)}</td>` +
          `<td>${top ? esc(top.name) + " " + fmtBytes(top.tx_bytes + top.rx_bytes) : "–"}</td></tr>`;
      })
      .join("");
    $("ov-periods-body").innerHTML = rows;
  }

  renderRemotes(rem) {
    // Placeholders ("(overflow)", "(other remotes)" of folded tiers) are
    // not remotes to name.
    const top = rem.remotes.filter((r) => r.remote_ip && !r.remote_ip.startsWith("(")).slice(0, 10);
    const named = top.some((r) => r.remote_name);
    $("ov-remotes-name").hidden = !named;
    $("ov-remotes-body").innerHTML = top
      .map(
        (r) => `<tr tabindex="-1"><td class="remote">${esc(r.remote_ip)}</td>${named ? `<td>${esc(r.remote_name || "")}</td>` : ""}` +
          `<td class="num" title="${fmtExact(r.tx_bytes)}">${fmtBytes(r.tx_bytes)}</td><td class="num" title="${fmtExact(r.rx_bytes)}">${fmtBytes(r.rx_bytes)}</td></tr>`,
      )
      .join("");
    $("ov-remotes-empty").hidden = top.length > 0;
  }

  // renderScopes takes rows with scope, tx_bytes and rx_bytes.
  renderScopes(rows) {
    const el = $("ov-scope");
    if (!rows.some((r) => r.scope !== undefined)) {
      el.innerHTML = `<p class="hint">Not reported by this daemon yet (the remotes have no <code>scope</code>).</p>`;
      el.removeAttribute("aria-label");
      el.removeAttribute("role");
      return;
    }
    const sums = new Map();
    let all = 0;
    for (const r of rows) {
      const s = r.scope || "unknown";
      const v = r.tx_bytes + r.rx_bytes;
      sums.set(s, (sums.get(s) || 0) + v);
      all += v;
    }
    const order = [...SCOPES.filter((s) => sums.has(s)), ...[...sums.keys()].filter((s) => !SCOPES.includes(s))];
    const pct = (v) => (all ? (100 * v) / all : 0);
    const bar = order
      .map((s, i) => `<span class="seg-bar" data-w="${pct(sums.get(s)).toFixed(2)}%" data-c="${PALETTE[i % PALETTE.length]}" title="${esc(SCOPE_NAMES[s] || s)}"></span>`)
      .join("");
    const list = order
      .map((s, i) => `<li><span class="swatch" data-c="${PALETTE[i % PALETTE.length]}"></span>${esc(SCOPE_NAMES[s] || s)} <b>${pct(sums.get(s)).toFixed(1)}%</b> <span class="hint">${fmtBytes(sums.get(s))}</span></li>`)
      .join("");
    el.innerHTML = `<div class="scope-bar" aria-hidden="true">${bar}</div><ul class="scope-list">${list}</ul>`;
    // Through the CSSOM: the page's CSP allows no inline style attributes.
    for (const x of el.querySelectorAll("[data-c]")) {
      x.style.setProperty("--c", x.dataset.c);
      if (x.dataset.w) x.style.setProperty("--w", x.dataset.w);
    }
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", "Locality: " + order.map((s) => `${SCOPE_NAMES[s] || s} ${pct(sums.get(s)).toFixed(1)}%`).join(", "));
  }
}
