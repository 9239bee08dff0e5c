// Each panel draws one part of an analysis: tokens, merges, compare, timeline, attention, lens, training.
"use strict";
const $ = id => document.getElementById(id);

function tokenLabel(t) {
  if (t.special) return t.piece;
  if (t.text === null) return "⟨" + t.bytes + "⟩";          // part of a UTF-8 character: its bytes
  return t.text.replace(/\n/g, "↵\n").replace(/\t/g, "→") || t.piece;
}

function chip(t, k, extra) {
  const s = document.createElement("span");
  s.className = "tok " + (t.special ? "special" : "c" + (k % 6)) + (t.text === null ? " bytes" : "") + (extra || "");
  s.textContent = tokenLabel(t);
  s.dataset.id = t.id;
  s.dataset.index = k;
  s.title = `#${k}  id ${t.id}  piece ${JSON.stringify(t.piece)}  bytes ${t.bytes || "(none)"}`;
  return s;
}

const Panels = {
  tokens(tokens, rendered, promptLen, onPick, timeline) {
    const box = $("tokens");
    box.replaceChildren(...tokens.map((t, k) => {
      const how = timeline && k >= promptLen && timeline[k - promptLen] ? timeline[k - promptLen].how : "";
      const c = chip(t, k, (k >= promptLen ? " gen" : "") + (how === "drafted, accepted" ? " drafted" : ""));
      if (how) c.title += `  (${how})`;
      c.tabIndex = 0;
      c.onclick = () => onPick(k);
      return c;
    }));
    $("rendered").textContent = rendered;
    $("token-ids").textContent = `===> [${tokens.map(t => t.id).join(", ")}]`;   // the seed's first lesson
    const n = tokens.length - promptLen;
    box.setAttribute("aria-label", `${promptLen} prompt tokens` + (n > 0 ? `, ${n} generated (underlined)` : ""));
  },

  merges(trace) {
    const out = [];
    const rule = document.createElement("p");
    rule.className = "note";
    rule.textContent = `${trace.family}: ${trace.rule}. Ends at ids [${trace.ids.join(", ")}].`;
    out.push(rule);
    for (const c of trace.chunks) {
      const d = document.createElement("div");
      d.className = "chunk";
      const head = document.createElement("div");
      head.className = "merge-step";
      head.textContent = c.added ? `added token ${JSON.stringify(c.text)}` : `start: ${c.symbols.map(s => JSON.stringify(s)).join(" ")}`;
      d.appendChild(head);
      c.steps.forEach((s, i) => {
        const line = document.createElement("div");
        line.className = "merge-step";
        const why = trace.family === "byte-level" ? `rank ${s.value}` : `score ${s.value}`;
        const alts = s.alternatives.map(a => `${a[0]}+${a[1]} (${a[2]})`).join(", ");
        line.innerHTML = `${i + 1}. <span class="pair"></span> &rarr; <b></b> <span class="why"></span>`;
        line.querySelector(".pair").textContent = `${s.pair[0]} + ${s.pair[1]}`;
        line.querySelector("b").textContent = s.merged;
        line.querySelector(".why").textContent = `(${why}, the best of the pairs; next: ${alts || "none"})`;
        d.appendChild(line);
      });
      if (c.note) d.appendChild(Object.assign(document.createElement("div"), {className: "note", textContent: c.note}));
      const end = document.createElement("div");
      end.className = "chips";
      end.append("ids: ", ...c.tokens.map((t, k) => chip(t, k)));
      d.appendChild(end);
      out.push(d);
    }
    $("merges").replaceChildren(...out);
  },

  compare(result) {
    const sets = result.tokenizers.map(t => new Set(t.ends));
    const rows = result.tokenizers.map((t, k) => {
      const row = document.createElement("div");
      row.className = "row";
      const name = document.createElement("b");
      name.textContent = `${t.name}: ${t.count} tokens`;
      const chips = document.createElement("div");
      chips.className = "chips";
      chips.append(...t.tokens.map((tok, i) => chip(tok, i, sets.some((s, j) => j !== k && !s.has(t.ends[i])) ? " disagree" : "")));
      row.append(name, chips);
      return row;
    });
    $("compare").replaceChildren(...rows);
  },

  timeline(A, step) {
    const s = A.timeline[step];
    const set = A.settings;
    $("step").max = Math.max(A.timeline.length - 1, 0);
    $("step").value = step;
    if (!s) {
      $("step-label").textContent = "no generated tokens";
      $("candidates").tBodies[0].replaceChildren();
      return;
    }
    const drawn = A.tokens[A.prompt_tokens + step];
    $("step-label").textContent = `step ${step + 1} of ${A.timeline.length}: position ${s.position} predicts ` +
      `${JSON.stringify(tokenLabel(drawn))} (id ${s.token})` + (A.speculation ? ` — ${s.how}` : "");
    $("step-note").textContent = set.temperature === 0
      ? `temperature 0: greedy, the most likely token is taken (seed ${set.seed} unused).`
      : `temperature ${set.temperature}, then top-k ${set.top_k || "off"} kept ${s.kept_top_k} tokens, then top-p ${set.top_p} kept ` +
        `${s.kept_top_p}; the token was drawn with probability ${fmt(s.p_token)} (seed ${set.seed}: the same seed replays this run).`;
    const rows = s.candidates.map(c => {
      const tr = document.createElement("tr");
      if (c.id === s.token) tr.className = "drawn";
      const cells = [c.rank + 1, tokenLabel(c.token), fmt(c.logit), fmt(c.p), fmt(c.p_temperature),
        c.in_top_k ? "kept" : "cut", c.in_top_p ? "kept" : "cut", fmt(c.p_final)];
      cells.forEach((v, i) => {
        const td = document.createElement("td");
        td.textContent = v;
        if (v === "cut") td.className = "cut";
        tr.appendChild(td);
      });
      tr.dataset.id = c.id;
      return tr;
    });
    $("candidates").tBodies[0].replaceChildren(...rows);
  },

  attention(A, query, rows, hideSink, onZoom) {
    $("att-query").textContent = `position ${query} (${JSON.stringify(tokenLabel(A.tokens[query]))})`;
    const {L, H, K} = A.shapes, G = H / K;
    const shown = rows.map(layer => layer.map(r => {
      if (!hideSink || r.length < 2) return r;
      const rest = r.slice(1), total = rest.reduce((a, b) => a + b, 0) || 1;
      return [0].concat(rest.map(v => v / total));
    }));
    const scale = Math.max(...shown.flat(2)) || 1;
    const cell = Math.max(1, Math.min(6, Math.floor(180 / (query + 1))));
    const lines = shown.map((layer, l) => {
      const line = document.createElement("div");
      line.className = "att-layer";
      line.appendChild(Object.assign(document.createElement("span"), {className: "lbl", textContent: `layer ${l}`}));
      for (let kv = 0; kv < K; kv++) {
        const group = document.createElement("div");
        group.className = "att-group";
        group.title = `query heads ${kv * G}..${kv * G + G - 1} share key/value head ${kv}`;
        for (let h = kv * G; h < kv * G + G; h++) {
          const c = Draw.strip(layer[h], scale, cell);
          c.className = "strip";
          c.tabIndex = 0;
          c.setAttribute("aria-label", `layer ${l} head ${h}`);
          c.onclick = () => onZoom(l, h);
          c.onkeydown = e => { if (e.key === "Enter") onZoom(l, h); };
          group.appendChild(c);
        }
        line.appendChild(group);
      }
      return line;
    });
    $("attention").replaceChildren(...lines);
    $("legend").replaceChildren(Draw.strip([0, .25, .5, .75, 1], 1, 20, 10),
      document.createTextNode(` weight 0 → ${fmt(scale)} (each strip: keys 0..${query}; ${L} layers × ${H} heads, ${K} KV groups)`));
    return shown;
  },

  zoom(A, shown, l, h) {
    const row = shown[l][h];
    const labels = row.map((_, i) => String(i));
    const svg = Draw.bars(labels, [{values: row, colour: "#0072B2", label: "weight"}],
      {width: Math.min(1200, 60 + row.length * 16), xlabel: "key position (earlier token)", ylabel: "attention weight",
       title: `layer ${l}, head ${h} (key/value head ${Math.floor(h / (A.shapes.H / A.shapes.K))})`});
    const chips = document.createElement("div");
    chips.className = "chips";
    chips.append(...row.map((v, i) => { const c = chip(A.tokens[i], i); c.style.opacity = 0.25 + 0.75 * v / (Math.max(...row) || 1); return c; }));
    $("att-zoom").replaceChildren(svg, chips);
  },

  lens(A, position, layers) {
    const head = document.createElement("tr");
    head.innerHTML = "<th>after layer</th>" + layers[0].map((_, i) => `<th>top ${i + 1}</th>`).join("");
    const rows = layers.map((top, l) => {
      const tr = document.createElement("tr");
      const name = l === 0 ? "embedding" : l === layers.length - 1 ? `${l - 1} (= the prediction)` : String(l - 1);
      tr.appendChild(Object.assign(document.createElement("td"), {textContent: name}));
      top.forEach(t => tr.appendChild(Object.assign(document.createElement("td"),
        {textContent: `${tokenLabel(t.token)}  ${fmt(t.p)}`})));
      if (l === layers.length - 1) tr.dataset.top = top[0].id;
      return tr;
    });
    $("lens").replaceChildren(head, ...rows);
    const norms = A.norms[position];
    $("norms").replaceChildren(Draw.lines([{values: norms.map((v, i) => [i, v]), colour: "#0072B2", label: "‖x‖"}],
      {xlabel: "layer (0 = embedding)", ylabel: "hidden-state norm", title: `norm of the hidden state at position ${position}`}));
    const step = A.timeline.find(s => s.position === position);
    if (step && step.push) {
      const labels = step.push.attention.map((_, i) => String(i));
      $("push").replaceChildren(Draw.bars(labels, [
        {values: step.push.attention, colour: "#0072B2", label: "attention"},
        {values: step.push.mlp, colour: "#E69F00", label: "MLP"}],
        {xlabel: "layer", ylabel: "push on the logit",
         title: `how each layer pushed ${JSON.stringify(tokenLabel(A.tokens[position + 1]))} (logit ${fmt(step.push.logit)})`}));
    } else {
      $("push").replaceChildren(Object.assign(document.createElement("p"), {className: "note",
        textContent: "pick a position that predicts a generated token to see each layer's push on it"}));
    }
  },

  training(rows) {
    if (!rows.length) return;
    $("panel-training").hidden = false;
    const pick = k => rows.map(r => [r.step, r[k]]);
    $("curves").replaceChildren(Draw.lines([{values: pick("train_loss"), colour: "#0072B2", label: "train"},
      {values: pick("val_loss"), colour: "#E69F00", label: "validation"}],
      {width: 560, height: 260, xlabel: "step", ylabel: "loss (nats per token)", title: "loss while training"}));
    $("samples").replaceChildren(...rows.slice(-6).map(r => {
      const p = document.createElement("pre");
      p.textContent = `step ${r.step} (val ${fmt(r.val_loss)}): ${r.sample}`;
      return p;
    }));
  },
};
