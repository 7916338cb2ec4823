// uPlot wrappers: a rate chart (upload/download lines), a stacked chart
// (top apps or processes) and a stacked bar chart (the history overview's
// days or months). All follow the container's width and the colour scheme,
// draw the daemon's downtime as shaded gaps, keep the time axis in whole
// seconds (never milliseconds, never a made-up year while data is pending)
// and give the container an ARIA summary (role=img, aria-label).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtBytes, fmtRate } from "./format.js";

export const UP_COLOR = "#e8590c";
export const DOWN_COLOR = "#1c7ed6";
export const PALETTE = ["#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#e64980", "#5c940d"];
const OTHER_COLOR = "#868e96";

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// Tick increments of the time axis, in seconds: whole seconds and up.
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 182 * 86400, 365 * 86400];

const p2 = (n) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// fmtTick labels a time tick for the axis' increment (seconds): local
// time, no milliseconds; the date only where the increment is a day or
// more, or at midnight.
export function fmtTick(sec, incr) {
  const d = new Date(sec * 1000);
  const hm = `${p2(d.getHours())}:${p2(d.getMinutes())}`;
  if (incr >= 28 * 86400) return `${MONTHS[d.getMonth()]} ${d.getFullYear()}`;
  if (incr >= 86400) return `${MONTHS[d.getMonth()]} ${d.getDate()}`;
  if (incr >= 60) return hm === "00:00" ? `${MONTHS[d.getMonth()]} ${d.getDate()}` : hm;
  return `${hm}:${p2(d.getSeconds())}`;
}

function timeAxis(stroke, grid) {
  return {
    stroke, grid, ticks: grid, space: 70, incrs: TIME_INCRS,
    values: (u, splits, ai, space, incr) => {
      const out = splits.map((v) => fmtTick(v, incr));
      // What the axis shows, for tests and for the curious (DevTools).
      if (u.root.parentNode) u.root.parentNode.dataset.ticks = out.join("|");
      return out;
    },
  };
}

function yAxis(stroke, grid, fmt) {
  return { stroke, grid, ticks: grid, size: 78, values: (u, vals) => vals.map((v) => fmt(v)) };
}

function fill(hex, alpha) {
  const a = Math.round(alpha * 255).toString(16).padStart(2, "0");
  return hex + a;
}

// gapsHook shades [from, to] stretches (seconds) of a time chart.
function gapsHook(chart) {
  return (u) => {
    if (!chart.gaps.length) return;
    const ctx = u.ctx;
    const { top, height, left, width } = u.bbox;
    ctx.save();
    ctx.fillStyle = cssVar("--gap") || "rgba(134,142,150,0.25)";
    ctx.strokeStyle = cssVar("--gap-edge") || "rgba(134,142,150,0.7)";
    ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    for (const [a, b] of chart.gaps) {
      let x0 = u.valToPos(a, "x", true), x1 = u.valToPos(b, "x", true);
      x0 = Math.max(left, x0);
      x1 = Math.min(left + width, x1);
      if (x1 <= x0) continue;
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
      ctx.beginPath();
      ctx.moveTo(x0, top);
      ctx.lineTo(x0, top + height);
      ctx.moveTo(x1, top);
      ctx.lineTo(x1, top + height);
      ctx.stroke();
      if (x1 - x0 > 70 * devicePixelRatio) {
        ctx.fillStyle = cssVar("--fg-muted") || "#666";
        ctx.fillText(chart.gapLabel, (x0 + x1) / 2, top + 14 * devicePixelRatio);
        ctx.fillStyle = cssVar("--gap") || "rgba(134,142,150,0.25)";
      }
    }
    ctx.restore();
  };
}

class Chart {
  constructor(el, height) {
    this.el = el;
    this.height = height;
    this.plot = null;
    this.data = null;
    this.xrange = null; // fixed [min, max] seconds, or null: the data's
    this.gaps = []; // [[from, to] seconds]: no daemon was counting
    this.gapLabel = "daemon not running";
    el.setAttribute("role", "img");
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(el);
  }

  width() {
    return Math.max(200, Math.floor(this.el.clientWidth));
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: this.height });
  }

  // summary is what a screen reader says for the chart.
  summary(text) {
    this.el.setAttribute("aria-label", text);
  }

  xScale() {
    return {
      time: true,
      range: (u, min, max) => {
        if (this.xrange) return this.xrange.slice();
        if (min == null || !isFinite(min) || min === max) {
          // No data yet (pending pre-fill): the last 5 minutes, not 1970
          // or a few milliseconds around one point.
          const now = Math.round(Date.now() / 1000);
          return min == null || !isFinite(min) ? [now - 300, now] : [min - 150, min + 150];
        }
        return [min, max];
      },
    };
  }

  axes(fmtY) {
    const stroke = cssVar("--fg-muted") || "#666";
    const grid = { stroke: cssVar("--grid") || "#8883", width: 1 };
    return [timeAxis(stroke, grid), yAxis(stroke, grid, fmtY || fmtRate)];
  }

  // build (re)creates the plot with opts for the given series shape.
  build(opts, data) {
    if (this.plot) this.plot.destroy();
    this.plot = new uPlot({ width: this.width(), height: this.height, axes: this.axes(), hooks: { draw: [gapsHook(this)] }, ...opts }, data, this.el);
    const c = this.el.querySelector("canvas");
    if (c) c.setAttribute("aria-hidden", "true");
  }

  restyle() {
    if (this.plot && this.data) this.build(this.opts(), this.data);
  }

  // setRange fixes the x range ([min, max] seconds) or frees it (null).
  setRange(r) {
    this.xrange = r;
  }

  redraw(data) {
    this.data = data;
    this.el.dataset.gaps = String(this.gaps.length);
    if (!this.plot) this.build(this.opts(), data);
    else {
      this.plot.setData(data, !this.xrange);
      if (this.xrange) this.plot.setScale("x", { min: this.xrange[0], max: this.xrange[1] });
    }
  }
}

// RateChart shows upload and download rates in bytes per second.
export class RateChart extends Chart {
  opts() {
    return {
      scales: { x: this.xScale(), y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1024] } },
      series: [
        {},
        { label: "Upload", stroke: UP_COLOR, fill: fill(UP_COLOR, 0.12), width: 1.5, value: (u, v) => fmtRate(v) },
        { label: "Download", stroke: DOWN_COLOR, fill: fill(DOWN_COLOR, 0.12), width: 1.5, value: (u, v) => fmtRate(v) },
      ],
      cursor: { points: { size: 6 } },
    };
  }

  // set takes [ts seconds[], up[], down[]] (null where not measured).
  set(data) {
    this.redraw(data);
  }
}

// StackChart stacks a few named series (values per ts) on top of each other.
export class StackChart extends Chart {
  constructor(el, height) {
    super(el, height);
    this.labels = [];
    this.own = [];
    this.fmt = fmtRate;
  }

  colour(i) {
    return this.labels[i] === "other" ? OTHER_COLOR : PALETTE[i % PALETTE.length];
  }

  seriesOpts(i, color) {
    const own = this.own;
    return {
      label: this.labels[i],
      stroke: color,
      fill: fill(color, 0.55),
      width: 1,
      value: (u, v, si, idx) => (idx == null || own[i] == null || own[i][idx] == null ? "–" : this.fmt(own[i][idx])),
    };
  }

  opts() {
    const series = [{}];
    // Series are cumulative sums drawn largest first, so each one's fill
    // paints over the one below; the legend shows each one's own value.
    for (let i = this.labels.length - 1; i >= 0; i--) series.push(this.seriesOpts(i, this.colour(i)));
    return {
      scales: { x: this.xScale(), y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1024] } },
      series,
      cursor: { points: { show: false } },
    };
  }

  // set takes ts seconds[], labels[] and per label values[] (null where
  // not measured: a gap in every series).
  set(ts, labels, values) {
    const n = ts.length;
    const cum = [];
    let acc = new Array(n).fill(0);
    for (let i = 0; i < labels.length; i++) {
      acc = acc.map((a, j) => (a == null || values[i][j] === null ? null : a + (values[i][j] || 0)));
      cum.push(acc);
    }
    this.own.length = 0;
    this.own.push(...values);
    this.el.dataset.series = labels.join("|");
    const data = [ts, ...cum.slice().reverse()];
    const same = this.labels.length === labels.length && this.labels.every((l, i) => l === labels[i]);
    this.labels = labels.slice();
    if (!same && this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
    this.redraw(data);
  }
}

// BarChart: stacked bars per period (x = period index, labelled by
// xlabels), values in bytes.
export class BarChart extends StackChart {
  constructor(el, height) {
    super(el, height);
    this.fmt = fmtBytes;
    this.xlabels = [];
  }

  axes() {
    const stroke = cssVar("--fg-muted") || "#666";
    const grid = { stroke: cssVar("--grid") || "#8883", width: 1 };
    return [
      { stroke, grid: { show: false }, ticks: grid, space: 40, incrs: [1, 2, 3, 5, 7, 10, 15, 30], values: (u, splits) => splits.map((i) => this.xlabels[i] ?? "") },
      yAxis(stroke, grid, fmtBytes),
    ];
  }

  seriesOpts(i, color) {
    return { ...super.seriesOpts(i, color), width: 0, fill: fill(color, 0.85), paths: uPlot.paths.bars({ size: [0.7, 60], align: 0 }), points: { show: false } };
  }

  opts() {
    const o = super.opts();
    const n = this.xlabels.length;
    o.scales.x = { time: false, range: () => [-0.5, Math.max(0.5, n - 0.5)] };
    o.legend = { show: true };
    o.cursor = { points: { show: false }, x: false, y: false };
    o.series[0] = { label: "Period", value: (u, v) => (v == null ? "–" : this.xlabels[Math.round(v)] ?? "–") };
    return o;
  }

  // setBars takes the period labels, group labels and per group bytes[].
  setBars(xlabels, labels, values) {
    const changed = xlabels.length !== this.xlabels.length || xlabels.some((l, i) => l !== this.xlabels[i]);
    this.xlabels = xlabels.slice();
    if (changed && this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
    this.set(xlabels.map((_, i) => i), labels, values);
  }
}
