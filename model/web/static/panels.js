// Each panel draws one part of an analysis: tokens, merges, compare, timeline, attention, lens,
// a scored multiple-choice item, training.
"use strict";
const $ = id => document.getElementById(id);

// Whitespace made visible wherever a token is shown: ␣ a space, ↵ a line end, ⇥ a tab (one line, so
// rows and chips stay aligned).
function visible(text) { return text.replace(/ /g, "␣").replace(/\r?\n/g, "↵").replace(/\t/g, "⇥"); }
function tokenLabel(t) {
  if (t.special) return t.piece;
  if (t.text === null) return "⟨" + t.bytes + "⟩";          // part of a UTF-8 character: its bytes
  return visible(t.text) || t.piece;
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
    const greedy = set.temperature === 0, kOff = greedy || !set.top_k, pOff = greedy || set.top_p >= 1;
    const rows = s.candidates.map(c => {
      const tr = document.createElement("tr");
      if (c.id === s.token) tr.className = "drawn";
      const cells = [c.rank + 1, tokenLabel(c.token), fmt(c.logit), fmt(c.p), fmt(c.p_temperature),
        kOff ? "off" : c.in_top_k ? "kept" : "cut", pOff ? "off" : c.in_top_p ? "kept" : "cut", fmt(c.p_final)];
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

  // The logit lens as a coloured grid: a row per layer, its top tokens, probability as colour.
  lens(A, position, layers) {
    const head = document.createElement("tr");
    head.innerHTML = "<th>after layer</th>" + layers[0].map((_, i) => `<th>top ${i + 1}</th>`).join("");
    const rows = layers.map((top, l) => {
      const tr = document.createElement("tr");
      const name = l === 0 ? "embedding" : l === layers.length - 1 ? `${l - 1} (the prediction)` : String(l - 1);
      tr.appendChild(Object.assign(document.createElement("th"), {textContent: name}));
      top.forEach(t => {
        const td = document.createElement("td");
        td.className = "cellp";
        td.style.background = shade(t.p);
        td.style.color = inkOn(t.p);
        td.textContent = `${tokenLabel(t.token)} ${fmt(t.p)}`;
        td.title = `id ${t.id}, p = ${t.p}`;
        td.dataset.id = t.id;
        td.dataset.p = t.p;
        tr.appendChild(td);
      });
      if (l === layers.length - 1) tr.dataset.top = top[0].id;
      return tr;
    });
    $("lens").replaceChildren(head, ...rows);
    const norms = A.norms[position];
    const width = Math.min(460, Math.max(280, $("panel-lens").clientWidth - 30));
    $("norms").replaceChildren(Draw.lines([{values: norms.map((v, i) => [i, v]), colour: "#0072B2", label: "norm of x"}],
      {width, xlabel: "layer (0 = the embedding)", ylabel: "‖x‖", integerX: true,
       title: `hidden-state norm at position ${position}`}));
    const step = A.timeline.find(s => s.position === position);
    if (step && step.push) {
      const labels = step.push.attention.map((_, i) => String(i));
      $("push").replaceChildren(Draw.bars(labels, [
        {values: step.push.attention, colour: "#0072B2", label: "attention"},
        {values: step.push.mlp, colour: "#E69F00", label: "MLP"}],
        {width, xlabel: "layer", ylabel: "push on the logit",
         title: `each layer's push on ${JSON.stringify(tokenLabel(A.tokens[position + 1]))} (logit ${fmt(step.push.logit)})`}));
    } else {
      $("push").replaceChildren(Object.assign(document.createElement("p"), {className: "note",
        textContent: "pick a position that predicts a generated token to see each layer's push on it"}));
    }
  },

  // The report card evaluate.py --report wrote (serve.py --report): each number with its interval, the
  // model card's published number beside it.
  report(c) {
    const box = $("report");
    box.hidden = false;
    const t = document.createElement("table");
    t.innerHTML = "<thead><tr><th>task</th><th>items</th><th>ours</th><th>95% interval</th><th>published</th></tr></thead>";
    const body = document.createElement("tbody");
    const add = cells => body.appendChild(Object.assign(document.createElement("tr"),
      {innerHTML: cells.map(() => "<td></td>").join("")})).querySelectorAll("td").forEach((td, i) => { td.textContent = cells[i]; });
    for (const [task, r] of Object.entries(c.results)) {
      if (task === "perplexity") { add([`perplexity (WikiText-2, ctx ${r.ctx})`, `${r.chunks} chunks`, r.ppl.toFixed(4), `± ${r.stderr.toFixed(4)}`, ""]); continue; }
      const pub = (c.published || {})[task];
      for (const m of ["acc_norm", "acc"]) {
        const [lo, hi] = r[m + "_interval"];
        add([`${task} ${m}`, String(r.items), (100 * r[m]).toFixed(2), `${(100 * lo).toFixed(2)} – ${(100 * hi).toFixed(2)}`,
             pub && m === "acc_norm" ? `${pub.value} (${pub.how})` : ""]);
      }
    }
    t.appendChild(body);
    box.replaceChildren(Object.assign(document.createElement("h3"), {textContent:
      `Report card: ${c.model.split("/").pop()} (${c.date}, sha256 ${String(c.sha256).slice(0, 12)}…)`}),
      Object.assign(document.createElement("div"), {className: "scroll"}), Object.assign(document.createElement("p"),
      {className: "note", textContent: c.method}));
    box.querySelector(".scroll").appendChild(t);
  },

  // One multiple-choice item as evaluate.py scores it: each ending's tokens coloured by log-probability.
  choice(result, endings) {
    const best = Math.max(...result.logprob_mean), out = [];
    result.endings.forEach((e, k) => {
      const row = document.createElement("div");
      row.className = "ending" + (k === result.pred_norm ? " picked" : "");
      const marks = [k === result.label ? "✓ the label" : "", k === result.pred_norm ? "acc_norm picks it" : "",
                     k === result.pred ? "acc picks it" : ""].filter(Boolean).join(", ");
      row.appendChild(Object.assign(document.createElement("div"), {className: "head",
        textContent: `${k}. ${endings[k].slice(0, 80)}  —  sum ${fmt(result.logprob_sum[k])}, mean ` +
          `${fmt(result.logprob_mean[k])} over ${e.tokens.length} tokens${marks ? "  (" + marks + ")" : ""}`}));
      const chips = document.createElement("div");
      chips.className = "chips";
      chips.append(...e.tokens.map((t, i) => {
        const c = chip(t, i);
        const p = Math.exp(e.logprobs[i]);
        c.className = "tok";
        c.style.background = shade(p);
        c.style.color = inkOn(p);
        c.title = `log p = ${e.logprobs[i].toFixed(4)} (p ${fmt(p)})`;
        c.dataset.logprob = e.logprobs[i];
        return c;
      }));
      row.appendChild(chips);
      out.push(row);
    });
    $("choice-result").replaceChildren(...out);
    return best;
  },

  training(rows, tuned) {
    if (!rows.length) return;
    $("panel-training").hidden = false;
    const pick = k => rows.map(r => [r.step, r[k]]);
    const width = Math.min(560, Math.max(280, $("panel-training").clientWidth - 30));
    $("curves").replaceChildren(Draw.lines([{values: pick("train_loss"), colour: "#0072B2", label: "train"},
      {values: pick("val_loss"), colour: "#E69F00", label: "validation"}],
      {width, height: 260, xlabel: "step", ylabel: "loss (nats per token)", title: "loss while training", integerX: true}));
    if (tuned && rows.length > 1) {     // the same held-out instruction, answered before and after tuning
      const first = rows[0], last = rows[rows.length - 1];
      const side = (title, r) => {
        const d = document.createElement("div");
        d.append(Object.assign(document.createElement("h3"), {textContent: title}),
                 Object.assign(document.createElement("pre"), {textContent: r.sample}));
        return d;
      };
      $("before-after").replaceChildren(
        Object.assign(document.createElement("p"), {className: "note", textContent:
          `${tuned.how} from ${tuned.init}: the first held-out instruction answered by the model it started from (step 0) ` +
          `and by the tuned model (step ${last.step}); log.jsonl's samples, temperature 0.8, top-k 200.`}),
        side("before (step 0, the base model)", first), side(`after (step ${last.step})`, last));
    }
    $("samples").replaceChildren(...rows.slice(-6).map(r => {
      const p = document.createElement("pre");
      p.textContent = `step ${r.step} (val ${fmt(r.val_loss)}): ${r.sample}`;
      return p;
    }));
  },
};

// A row of attention weights with the first key (the "attention sink") left out and the rest rescaled.
function withoutSink(r, hide) {
  if (!hide || r.length < 2) return r;
  const rest = r.slice(1), total = rest.reduce((a, b) => a + b, 0) || 1;
  return [0].concat(rest.map(v => v / total));
}
