// Charts drawn by hand: SVG lines and bars with clean axes, canvas strips and heatmaps for attention.
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
  // The legend on a row of its own under the title: it never covers the title or the lines.
  legend(svg, series, x, y) {
    let at = x;
    for (const s of series) {
      this.el("rect", {x: at, y: y - 9, width: 10, height: 10, fill: s.colour}, svg);
      const t = this.text(svg, at + 14, y, s.label, "start");
      at += 22 + 6.5 * s.label.length;
      t.setAttribute("class", "legend");
    }
  },
  // series: [{values: [[x, y], ...], colour, label}]; integerX: ticks at whole numbers only (layers, steps)
  lines(series, {width = 420, height = 230, xlabel = "", ylabel = "", title = "", integerX = false} = {}) {
    const svg = this.el("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || ylabel});
    const pad = {l: 56, r: 14, t: 40, b: 38};
    const all = series.flatMap(s => s.values);
    if (!all.length) return svg;
    const xs = all.map(v => v[0]), ys = all.map(v => v[1]);
    const xt = niceTicks(Math.min(...xs), Math.max(...xs), 6, integerX), yt = niceTicks(Math.min(...ys), Math.max(...ys), 5);
    const [x0, x1, y0, y1] = [xt[0], xt[xt.length - 1], yt[0], yt[yt.length - 1]];
    const sx = x => pad.l + (x - x0) / ((x1 - x0) || 1) * (width - pad.l - pad.r);
    const sy = y => height - pad.b - (y - y0) / ((y1 - y0) || 1) * (height - pad.t - pad.b);
    this.axes(svg, {width, height, pad, xlabel, ylabel, title, ticksX: xt, ticksY: yt, sx, sy});
    for (const s of series) {
      this.el("polyline", {points: s.values.map(v => `${sx(v[0])},${sy(v[1])}`).join(" "), fill: "none",
        stroke: s.colour, "stroke-width": 2}, svg);
      if (s.values.length === 1) this.el("circle", {cx: sx(s.values[0][0]), cy: sy(s.values[0][1]), r: 4, fill: s.colour}, svg);
    }
    this.legend(svg, series, pad.l, 30);
    return svg;
  },
  axes(svg, {width, height, pad, xlabel, ylabel, title, ticksX, ticksY, sx, sy}) {
    this.el("line", {x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, stroke: "#888"}, svg);
    this.el("line", {x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b, stroke: "#888"}, svg);
    const digits = tickDigits(ticksY);
    for (const x of ticksX) this.text(svg, sx(x), height - pad.b + 14, tickLabel(x, tickDigits(ticksX)));
    for (const y of ticksY) {
      this.el("line", {x1: pad.l - 3, y1: sy(y), x2: width - pad.r, y2: sy(y), stroke: "#eee"}, svg);
      this.text(svg, pad.l - 6, sy(y) + 4, tickLabel(y, digits), "end");
    }
    this.text(svg, (pad.l + width - pad.r) / 2, height - 6, xlabel);
    this.text(svg, 12, (pad.t + height - pad.b) / 2, ylabel, "middle", true);
    if (title) this.text(svg, pad.l, 13, title, "start").setAttribute("class", "title");
  },
  // bar series per x label (attention, MLP), around zero
  bars(labels, series, {width = 520, height = 230, xlabel = "", ylabel = "", title = ""} = {}) {
    const svg = this.el("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title});
    const pad = {l: 56, r: 14, t: 40, b: 38};
    const all = series.flatMap(s => s.values).concat([0]);
    const yt = niceTicks(Math.min(...all), Math.max(...all), 5);
    const y0 = yt[0], y1 = yt[yt.length - 1];
    const n = labels.length, slot = (width - pad.l - pad.r) / Math.max(n, 1);
    const sy = y => height - pad.b - (y - y0) / ((y1 - y0) || 1) * (height - pad.t - pad.b);
    this.axes(svg, {width, height, pad, xlabel, ylabel, title, ticksX: [], ticksY: yt, sx: x => x, sy});
    this.el("line", {x1: pad.l, y1: sy(0), x2: width - pad.r, y2: sy(0), stroke: "#999"}, svg);
    series.forEach((s, k) => s.values.forEach((v, i) => {
      const x = pad.l + i * slot + k * slot / series.length;
      const r = this.el("rect", {x, width: Math.max(slot / series.length - 1, 1), y: Math.min(sy(v), sy(0)),
        height: Math.abs(sy(v) - sy(0)), fill: s.colour}, svg);
      this.el("title", {}, r).textContent = `${s.label}, ${labels[i]}: ${fmt(v)}`;
    }));
    const every = Math.ceil(n / Math.max(1, Math.floor((width - pad.l - pad.r) / 28)));
    for (let i = 0; i < n; i += every) this.text(svg, pad.l + (i + 0.5) * slot, height - pad.b + 14, labels[i]);
    this.legend(svg, series, pad.l, 30);
    return svg;
  },
  // one attention row squeezed or stretched into `width` pixels: each pixel the largest weight it covers
  strip(values, scale, width, h = 12) {
    const c = document.createElement("canvas");
    c.width = Math.max(Math.round(width), 1); c.height = h;
    const g = c.getContext("2d"), n = values.length;
    for (let px = 0; px < c.width; px++) {
      const a = Math.floor(px * n / c.width), b = Math.max(a + 1, Math.floor((px + 1) * n / c.width));
      let v = 0;
      for (let i = a; i < b; i++) v = Math.max(v, values[i]);
      g.fillStyle = shade(v / (scale || 1));
      g.fillRect(px, 0, 1, h);
    }
    return c;
  },
  // a query x key heatmap [T][T] with token labels on both axes when the cells are large enough;
  // hidden(i, j) marks what the mask hides (the future, beyond a sliding window): drawn hatched grey
  heatmap(probs, labels, {cell, scale, hidden, onHover}) {
    const T = probs.length, lab = cell >= 9 ? Math.min(90, 7 * Math.max(...labels.map(s => s.length)) + 6) : 0;
    const c = document.createElement("canvas");
    c.width = lab + T * cell; c.height = lab + T * cell;
    const g = c.getContext("2d");
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        g.fillStyle = hidden(i, j) ? "#e4e4e4" : shade(probs[i][j] / (scale || 1));
        g.fillRect(lab + j * cell, lab + i * cell, cell, cell);
      }
    }
    if (lab) {
      g.font = `${Math.min(11, cell)}px ui-monospace, monospace`;
      g.fillStyle = "#1b1b1b";
      g.textAlign = "right"; g.textBaseline = "middle";
      labels.forEach((s, i) => g.fillText(s, lab - 3, lab + (i + 0.5) * cell));     // queries, down the side
      g.save(); g.rotate(-Math.PI / 2);
      labels.forEach((s, j) => g.fillText(s, -3, lab + (j + 0.5) * cell));          // keys, along the top
      g.restore();
    }
    c.onmousemove = e => {
      const r = c.getBoundingClientRect();
      const j = Math.floor((e.clientX - r.left - lab) / cell), i = Math.floor((e.clientY - r.top - lab) / cell);
      if (i >= 0 && j >= 0 && i < T && j < T) onHover(i, j);
    };
    return c;
  },
};
function shade(t) {  // a single-hue sequential scale: light to dark blue
  t = Math.max(0, Math.min(1, t));
  const r = Math.round(247 - t * 239), g = Math.round(251 - t * 203), b = Math.round(255 - t * 148);
  return `rgb(${r},${g},${b})`;
}
function inkOn(t) { return t > 0.55 ? "#fff" : "#111"; }   // text readable on shade(t)
// Ticks at 1, 2 or 5 times a power of ten covering [lo, hi] (whole numbers only when `integer`).
function niceTicks(lo, hi, n, integer) {
  if (!(hi > lo)) { const d = integer ? 1 : Math.abs(lo) / 10 || 1; lo -= d; hi += d; }
  let step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
  for (const m of [1, 2, 5, 10]) if ((hi - lo) / (m * step) <= n) { step *= m; break; }
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  if (ticks[ticks.length - 1] < hi) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
  return ticks;
}
function tickDigits(ticks) {  // decimals enough to tell neighbouring ticks apart
  if (ticks.length < 2) return 0;
  const step = Math.abs(ticks[1] - ticks[0]);
  return step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
}
function tickLabel(v, digits) { return Math.abs(v) >= 1e5 ? v.toExponential(1) : v.toFixed(digits); }
function fmt(x) {
  if (typeof x !== "number") return String(x);
  if (x !== 0 && Math.abs(x) < 0.01) return x.toExponential(1);
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2);
}
