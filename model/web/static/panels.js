// The panels' shared pieces (token labels and chips) and panels 2-4: tokens, merges, compare, timeline.
// attention.js, lens.js, evaluation.js and training.js add the others to Panels.
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
};
