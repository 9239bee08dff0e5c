// Panel 5: attention: the overview of every layer and head from one position, and one layer's
// query x key heatmaps (model/lens.py attention_rows, attention_matrix).
"use strict";
Object.assign(Panels, {
  // The overview: one cell per (layer, head), the selected query's row fitted into the cell's width,
  // so it fits the panel at any prompt length; heads grouped by the key/value head they share.
  attention(A, query, rows, hideSink, onOpen, opened) {
    $("att-query").textContent = `position ${query} (${JSON.stringify(tokenLabel(A.tokens[query]))})`;
    const {L, H, K} = A.shapes, G = H / K;
    const shown = rows.map(layer => layer.map(r => withoutSink(r, hideSink)));
    const scale = Math.max(...shown.flat(2)) || 1;
    const box = $("attention"), avail = Math.max(200, box.clientWidth - 52 - K * 8);
    const cellW = Math.max(6, Math.min(64, Math.floor(avail / H) - 2));
    const lines = shown.map((layer, l) => {
      const line = document.createElement("div");
      line.className = "att-layer" + (opened === l ? " open" : "");
      line.appendChild(Object.assign(document.createElement("span"), {className: "lbl", textContent: `L${l}`}));
      for (let kv = 0; kv < K; kv++) {
        const group = document.createElement("div");
        group.className = "att-group";
        group.title = `query heads ${kv * G}..${kv * G + G - 1} share key/value head ${kv}`;
        for (let h = kv * G; h < kv * G + G; h++) {
          const c = Draw.strip(layer[h], scale, cellW);
          c.className = "strip";
          c.tabIndex = 0;
          c.setAttribute("aria-label", `layer ${l} head ${h}: open the layer's heatmaps`);
          c.title = `layer ${l}, head ${h} (key/value head ${kv}): keys 0..${query} left to right`;
          c.onclick = () => onOpen(l, h);
          c.onkeydown = e => { if (e.key === "Enter") onOpen(l, h); };
          group.appendChild(c);
        }
        line.appendChild(group);
      }
      return line;
    });
    box.replaceChildren(...lines);
    $("legend").replaceChildren(Draw.strip([0, .25, .5, .75, 1], 1, 100, 10),
      document.createTextNode(` weight 0 → ${fmt(scale)}. ${L} layers × ${H} heads in ${K} key/value groups; ` +
        `each cell: keys 0..${query} from position ${query}. Click one to open its layer.`));
    return shown;
  },

  // One layer, every query over every key: a heatmap per head with the tokens on both axes, the mask's
  // hidden cells (the future, beyond a sliding window) hatched grey, grouped by key/value head.
  layerHeatmaps(A, layer, probs, hideSink, window, pickHead) {
    const {H, K} = A.shapes, G = H / K, T = probs[0].length;
    const labels = A.tokens.slice(0, T).map(t => tokenLabel(t).slice(0, 12));
    const shown = probs.map(head => head.map(r => withoutSink(r, hideSink)));
    const box = $("att-layer"), avail = Math.max(160, Math.min(box.clientWidth || 600, 1400) - 20);
    const perRow = Math.max(1, Math.min(G, Math.floor(avail / 200)));
    const cell = Math.max(1, Math.min(16, Math.floor(avail / perRow / (T + 8))));
    const hidden = (i, j) => j > i || (window !== null && window !== undefined && j <= i - window);
    const caption = $("att-hover");
    const groups = [];
    for (let kv = 0; kv < K; kv++) {
      const group = document.createElement("div");
      group.className = "heat-group";
      group.appendChild(Object.assign(document.createElement("div"), {className: "note",
        textContent: `key/value head ${kv}: query heads ${kv * G}..${kv * G + G - 1}`}));
      for (let h = kv * G; h < kv * G + G; h++) {
        const fig = document.createElement("figure");
        const scale = Math.max(...shown[h].flat()) || 1;
        const c = Draw.heatmap(shown[h], labels, {cell, scale, hidden, onHover: (i, j) => {
          caption.textContent = `layer ${layer}, head ${h}: query ${i} ${JSON.stringify(labels[i])} → key ${j} ` +
            `${JSON.stringify(labels[j])}: ${hidden(i, j) ? "hidden by the mask" : fmt(shown[h][i][j])}`;
        }});
        c.setAttribute("aria-label", `layer ${layer} head ${h}: ${T} queries x ${T} keys`);
        c.className = "heat";
        fig.append(c, Object.assign(document.createElement("figcaption"), {textContent: `head ${h}`}));
        group.appendChild(fig);
      }
      groups.push(group);
    }
    $("att-layer-title").textContent = `Layer ${layer}: every query (rows) over every key (columns), ${T} tokens` +
      (window ? `; this layer sees only the last ${window} tokens (its sliding window)` : "; the causal mask hides the future (grey)");
    box.replaceChildren(...groups);
  },
});

// A row of attention weights with the first key (the "attention sink") left out and the rest rescaled.
function withoutSink(r, hide) {
  if (!hide || r.length < 2) return r;
  const rest = r.slice(1), total = rest.reduce((a, b) => a + b, 0) || 1;
  return [0].concat(rest.map(v => v / total));
}
