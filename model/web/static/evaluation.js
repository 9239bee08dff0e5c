// Panel 7: how good is it: the report card (evaluate.py --report) and one multiple-choice item scored as
// evaluate.py scores it (model/evaluation/choices.py score_item).
"use strict";
Object.assign(Panels, {
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
});
