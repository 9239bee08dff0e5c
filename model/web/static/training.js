// Panel 8: how this model learned: log.jsonl's loss curves and samples; a tuned folder's answer before
// and after, side by side (model/train/loop.py).
"use strict";
Object.assign(Panels, {
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
});
