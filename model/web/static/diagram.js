// Panel 1: the model as a diagram, drawn from the loaded model's own config (model/page_data.py
// architecture): embedding, L x [the block's parts], final norm, head. Each part names the function
// that computes it and leads to the panel that shows its numbers.
"use strict";
const Diagram = {
  draw(arch, onPick) {
    const box = $("diagram"), width = Math.min(box.clientWidth || 600, 720);
    const boxW = Math.min(width - 40, 420), x = (width - boxW) / 2, rowH = 30, gap = 8;
    const parts = [...arch.before.map(p => ({...p, zone: "before"})), ...arch.block.map(p => ({...p, zone: "block"})),
                   ...arch.after.map(p => ({...p, zone: "after"}))];
    const firstBlock = arch.before.length, lastBlock = arch.before.length + arch.block.length - 1;
    const height = 40 + parts.length * (rowH + gap) + 64;
    const svg = Draw.el("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `the ${arch.type} model: ${arch.layers} blocks`});
    const yOf = i => 26 + i * (rowH + gap) + (i >= firstBlock ? 20 : 0) + (i > lastBlock ? 20 : 0);
    // the repeated block: a frame around its parts, "x L"
    const top = yOf(firstBlock) - 22, bottom = yOf(lastBlock) + rowH + 8;
    Draw.el("rect", {x: x - 14, y: top, width: boxW + 28, height: bottom - top, rx: 8, fill: "#fafafa",
      stroke: "#888", "stroke-dasharray": "4 3"}, svg);
    Draw.text(svg, x, top + 14, `the block, × ${arch.layers} layers (green: the residual stream)`, "start")
      .setAttribute("class", "title");
    // the residual stream: a line down the left of the block, joined by each "+ residual"
    const rx = x - 6;
    Draw.el("line", {x1: rx, y1: top + 4, x2: rx, y2: bottom - 4, stroke: "#009E73", "stroke-width": 2}, svg);
    parts.forEach((p, i) => {
      const y = yOf(i);
      if (i > 0) Draw.el("line", {x1: width / 2, y1: yOf(i - 1) + rowH, x2: width / 2, y2: y, stroke: "#888"}, svg);
      const g = Draw.el("g", {class: "part", tabindex: 0, role: "button",
        "aria-label": `${p.name}: ${p.function}, shown in the ${p.panel} panel`}, svg);
      const fill = p.name.startsWith("+") ? "#e3f1e9" : p.name.includes("RMSNorm") ? "#fbe3b3"
        : p.name === "attention" || p.name === "RoPE" || p.name.startsWith("q/k") ? "#cfe4f5"
        : p.name === "MLP" ? "#f6d6e6" : "#eeeeee";
      Draw.el("rect", {x, y, width: boxW, height: rowH, rx: 5, fill, stroke: "#666"}, g);
      Draw.text(g, x + 8, y + 19, p.name, "start").setAttribute("class", "title");
      Draw.text(g, x + boxW - 8, y + 19, p.shape, "end").setAttribute("class", "shape");
      if (p.name.startsWith("+")) Draw.el("line", {x1: rx, y1: y + rowH / 2, x2: x, y2: y + rowH / 2, stroke: "#009E73", "stroke-width": 2}, svg);
      Draw.el("title", {}, g).textContent = `${p.function}${p.note ? " — " + p.note : ""}`;
      const pick = () => onPick(p);
      g.addEventListener("click", pick);
      g.addEventListener("keydown", e => { if (e.key === "Enter") pick(); });
    });
    Draw.text(svg, width / 2, height - 6, "click a part: the function that computes it, and its panel");
    box.replaceChildren(svg);
  },
};
