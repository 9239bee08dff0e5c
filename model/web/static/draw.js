// Charts drawn by hand: SVG lines and bars with labelled axes, canvas strips for attention.
"use strict";
const Draw = {
  svgNS: "http://www.w3.org/2000/svg",
  el(tag, attrs, parent) {
    const e = document.createElementNS(this.svgNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  },
  text(parent, x, y, s, anchor, rotate) {
    const t = this.el("text", {x, y, "text-anchor": anchor || "middle"}, parent);
    if (rotate) t.setAttribute("transform", `rotate(-90 ${x} ${y})`);
    t.textContent = s;
    return t;
  },
  // series: [{values: [[x, y], ...], colour, label}]
  lines(series, {width = 420, height = 220, xlabel = "", ylabel = "", title = ""} = {}) {
    const svg = this.el("svg", {width, height, role: "img", "aria-label": title || ylabel});
    const pad = {l: 52, r: 12, t: 20, b: 36};
    const all = series.flatMap(s => s.values);
    if (!all.length) return svg;
    const xs = all.map(v => v[0]), ys = all.map(v => v[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = x => pad.l + (x - x0) / ((x1 - x0) || 1) * (width - pad.l - pad.r);
    const sy = y => height - pad.b - (y - y0) / ((y1 - y0) || 1) * (height - pad.t - pad.b);
    this.axes(svg, {width, height, pad, xlabel, ylabel, title, ticksX: [x0, x1], ticksY: [y0, y1], sx, sy});
    series.forEach((s, k) => {
      this.el("polyline", {points: s.values.map(v => `${sx(v[0])},${sy(v[1])}`).join(" "), fill: "none",
        stroke: s.colour, "stroke-width": 2}, svg);
      this.el("rect", {x: width - pad.r - 110, y: pad.t + k * 14 - 8, width: 10, height: 10, fill: s.colour}, svg);
      this.text(svg, width - pad.r - 96, pad.t + k * 14 + 1, s.label, "start");
    });
    return svg;
  },
  axes(svg, {width, height, pad, xlabel, ylabel, title, ticksX, ticksY, sx, sy}) {
    this.el("line", {x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, stroke: "#888"}, svg);
    this.el("line", {x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b, stroke: "#888"}, svg);
    for (const x of ticksX) this.text(svg, sx(x), height - pad.b + 14, fmt(x));
    for (const y of ticksY) this.text(svg, pad.l - 4, sy(y) + 4, fmt(y), "end");
    this.text(svg, (pad.l + width - pad.r) / 2, height - 4, xlabel);
    this.text(svg, 12, (pad.t + height - pad.b) / 2, ylabel, "middle", true);
    if (title) this.text(svg, (pad.l + width - pad.r) / 2, 13, title);
  },
  // two bar series per x (attention, MLP), around zero
  bars(labels, series, {width = 520, height = 220, xlabel = "", ylabel = "", title = ""} = {}) {
    const svg = this.el("svg", {width, height, role: "img", "aria-label": title});
    const pad = {l: 52, r: 12, t: 20, b: 36};
    const all = series.flatMap(s => s.values).concat([0]);
    const y0 = Math.min(...all), y1 = Math.max(...all);
    const n = labels.length, slot = (width - pad.l - pad.r) / Math.max(n, 1);
    const sy = y => height - pad.b - (y - y0) / ((y1 - y0) || 1) * (height - pad.t - pad.b);
    this.axes(svg, {width, height, pad, xlabel, ylabel, title, ticksX: [], ticksY: [y0, 0, y1],
      sx: x => x, sy});
    this.el("line", {x1: pad.l, y1: sy(0), x2: width - pad.r, y2: sy(0), stroke: "#bbb"}, svg);
    series.forEach((s, k) => s.values.forEach((v, i) => {
      const x = pad.l + i * slot + k * slot / series.length;
      const r = this.el("rect", {x, width: Math.max(slot / series.length - 1, 1), y: Math.min(sy(v), sy(0)),
        height: Math.abs(sy(v) - sy(0)), fill: s.colour}, svg);
      this.el("title", {}, r).textContent = `${s.label}, layer ${labels[i]}: ${fmt(v)}`;
    }));
    for (let i = 0; i < n; i += Math.ceil(n / 10)) this.text(svg, pad.l + (i + 0.5) * slot, height - pad.b + 14, labels[i]);
    series.forEach((s, k) => {
      this.el("rect", {x: width - pad.r - 90, y: pad.t + k * 14 - 8, width: 10, height: 10, fill: s.colour}, svg);
      this.text(svg, width - pad.r - 76, pad.t + k * 14 + 1, s.label, "start");
    });
    return svg;
  },
  // one attention row as a strip of cells: white (0) to dark blue (the row's scale)
  strip(values, scale, cell = 4, h = 10) {
    const c = document.createElement("canvas");
    c.width = Math.max(values.length * cell, 1); c.height = h;
    const g = c.getContext("2d");
    values.forEach((v, i) => { g.fillStyle = shade(v / (scale || 1)); g.fillRect(i * cell, 0, cell, h); });
    return c;
  },
};
function shade(t) {  // a single-hue sequential scale: light to dark blue
  t = Math.max(0, Math.min(1, t));
  const r = Math.round(247 - t * 239), g = Math.round(251 - t * 203), b = Math.round(255 - t * 148);
  return `rgb(${r},${g},${b})`;
}
function fmt(x) {
  if (typeof x !== "number") return String(x);
  if (x !== 0 && Math.abs(x) < 0.01) return x.toExponential(1);
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2);
}
