// Panel 6: the logit lens as a coloured grid, the hidden-state norms and each layer's push (model/lens.py).
"use strict";
Object.assign(Panels, {
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
});
