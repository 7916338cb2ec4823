// uPlot wrappers: a rate chart (upload/download lines) and a stacked chart
// (top processes). Both follow the container's width and the colour scheme.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtRate } from "./format.js";

export const UP_COLOR = "#e8590c";
export const DOWN_COLOR = "#1c7ed6";
export const PALETTE = ["#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599"];
const OTHER_COLOR = "#868e96";

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function axes() {
  const stroke = cssVar("--fg-muted") || "#666";
  const grid = { stroke: cssVar("--grid") || "#8883", width: 1 };
  return [
    { stroke, grid, ticks: grid, space: 80 },
    { stroke, grid, ticks: grid, size: 78, values: (u, vals) => vals.map((v) => fmtRate(v)) },
  ];
}

function fill(hex, alpha) {
  const a = Math.round(alpha * 255).toString(16).padStart(2, "0");
  return hex + a;
}

class Chart {
  constructor(el, height) {
    this.el = el;
    this.height = height;
    this.plot = null;
    this.data = null;
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(el);
  }

  width() {
    return Math.max(200, Math.floor(this.el.clientWidth));
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: this.height });
  }

  // build (re)creates the plot with opts for the given series shape.
  build(opts, data) {
    if (this.plot) this.plot.destroy();
    this.plot = new uPlot({ width: this.width(), height: this.height, axes: axes(), ...opts }, data, this.el);
  }

  restyle() {
    if (this.plot && this.data) this.build(this.opts(), this.data);
  }
}

// RateChart shows upload and download rates in bytes per second.
export class RateChart extends Chart {
  opts() {
    return {
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1024] } },
      series: [
        {},
        { label: "Upload", stroke: UP_COLOR, fill: fill(UP_COLOR, 0.12), width: 1.5, value: (u, v) => fmtRate(v) },
        { label: "Download", stroke: DOWN_COLOR, fill: fill(DOWN_COLOR, 0.12), width: 1.5, value: (u, v) => fmtRate(v) },
      ],
      cursor: { points: { size: 6 } },
    };
  }

  // set takes [ts seconds[], up[], down[]].
  set(data) {
    this.data = data;
    if (!this.plot) this.build(this.opts(), data);
    else this.plot.setData(data);
  }
}

// StackChart stacks a few named series (values per ts) on top of each other.
export class StackChart extends Chart {
  constructor(el, height) {
    super(el, height);
    this.labels = [];
    this.own = [];
  }

  opts() {
    const own = this.own;
    const series = [{}];
    // Series are cumulative sums drawn largest first, so each one's fill
    // paints over the one below; the legend shows each one's own value.
    for (let i = this.labels.length - 1; i >= 0; i--) {
      const color = this.labels[i] === "other" ? OTHER_COLOR : PALETTE[i % PALETTE.length];
      series.push({
        label: this.labels[i],
        stroke: color,
        fill: fill(color, 0.55),
        width: 1,
        value: (u, v, si, idx) => (idx == null || own[i] == null ? "–" : fmtRate(own[i][idx])),
      });
    }
    return {
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1024] } },
      series,
      cursor: { points: { show: false } },
    };
  }

  // set takes ts seconds[], labels[] and per label values[].
  set(ts, labels, values) {
    const n = ts.length;
    const cum = [];
    let acc = new Array(n).fill(0);
    for (let i = 0; i < labels.length; i++) {
      acc = acc.map((a, j) => a + (values[i][j] || 0));
      cum.push(acc);
    }
    this.own.length = 0;
    this.own.push(...values);
    const data = [ts, ...cum.slice().reverse()];
    this.data = data;
    const same = this.labels.length === labels.length && this.labels.every((l, i) => l === labels[i]);
    this.labels = labels.slice();
    if (!this.plot || !same) this.build(this.opts(), data);
    else this.plot.setData(data);
  }
}
