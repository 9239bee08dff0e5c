// The page's state (kept in the URL), its controls, and "Save this view".
"use strict";
const state = {A: null, info: null, step: 0, query: null, rows: null, layer: null, layerProbs: null, item: -1};
const FIELDS = ["prompt", "system", "max", "temperature", "top_k", "top_p", "seed"];
const PANELS = {model: "panel-model", tokens: "panel-tokens", timeline: "panel-timeline", attention: "panel-attention",
                lens: "panel-lens"};

function status(text) { $("status").textContent = text; }

function readURL() {
  const q = new URLSearchParams(API.saved ? API.saved.search : location.search);
  for (const f of FIELDS) if (q.has(f)) $(f).value = q.get(f);
  $("chat").checked = q.get("chat") === "1";
  $("speculate").checked = q.get("spec") === "1";
  $("hide-sink").checked = q.get("sink") === "0";
  return {run: q.has("prompt"), step: +(q.get("step") || 0), query: q.has("pos") ? +q.get("pos") : null,
          layer: q.has("layer") ? +q.get("layer") : null};
}

function writeURL() {
  if (API.saved) return;
  const q = new URLSearchParams();
  for (const f of FIELDS) if ($(f).value !== "") q.set(f, $(f).value);
  if ($("chat").checked) q.set("chat", "1");
  if ($("speculate").checked) q.set("spec", "1");
  if ($("hide-sink").checked) q.set("sink", "0");
  if (state.A) {
    q.set("step", state.step);
    if (state.query !== null) q.set("pos", state.query);
    if (state.layer !== null) q.set("layer", state.layer);
  }
  history.replaceState(null, "", "?" + q.toString());
}

function request() {
  const num = (id, parse) => $(id).value === "" ? undefined : parse($(id).value);
  return {text: $("prompt").value, chat: $("chat").checked, system: $("system").value || undefined,
          max_new_tokens: num("max", parseInt), temperature: num("temperature", parseFloat),
          top_k: num("top_k", parseInt), top_p: num("top_p", parseFloat), seed: num("seed", parseInt),
          speculate: $("speculate").checked};
}

async function analyse(view) {
  const req = request();
  if (!req.text.trim()) { status("type a prompt first"); return; }
  status("tokenizing…");
  try {
    const t = await API.get("/api/tokens", {text: req.text, chat: req.chat, system: req.system});
    $("intro").hidden = true;
    $("panel-tokens").hidden = false;
    Panels.tokens(t.tokens, t.rendered, t.tokens.length, pickPosition);
    const word = (req.text.match(/\S+/) || [""])[0].slice(0, 40);
    if (!$("merge-word").value) $("merge-word").value = word;
    $("panel-merges").hidden = false;
    showMerges();
    API.get("/api/compare", {text: req.text}).then(Panels.compare).catch(e => status(e.message));
    status("running the model…");
    const A = await API.get("/api/analyze", req);
    state.A = A;
    document.querySelectorAll(".after-analysis").forEach(p => { p.hidden = false; });
    Panels.tokens(A.tokens, A.rendered, A.prompt_tokens, pickPosition, A.timeline);
    const step = Math.min(view.step || 0, Math.max(A.timeline.length - 1, 0));
    state.layer = view.layer !== null && view.layer !== undefined && view.layer < A.shapes.L ? view.layer : 0;
    await showStep(step, view.query);
    await openLayer(state.layer);
    $("save").disabled = !!API.saved;
    status(`${A.prompt_tokens} prompt + ${A.new_tokens} new tokens; generate ${fmt(A.seconds.generate)} s, trace ${fmt(A.seconds.trace)} s`);
  } catch (e) { status("error: " + e.message); }
}

async function showStep(step, query) {
  const A = state.A;
  state.step = step;
  Panels.timeline(A, step);
  const s = A.timeline[step];
  await pickPosition(query !== null && query !== undefined ? query : (s ? s.position : A.prompt_tokens - 1), true);
}

async function pickPosition(k) {
  const A = state.A;
  if (!A) return;
  state.query = k;
  document.querySelectorAll("#tokens .tok").forEach(c => c.classList.toggle("selected", +c.dataset.index === k));
  const [att, lens] = await Promise.all([API.get(`/api/attention?id=${A.id}&query=${k}`),
                                         API.get(`/api/lens?id=${A.id}&position=${k}`)]);
  state.rows = att.rows;
  drawAttention();
  Panels.lens(A, k, lens.layers);
  writeURL();
}

// Everything the sink toggle affects: the overview and the open layer's heatmaps.
function drawAttention() {
  const hide = $("hide-sink").checked;
  Panels.attention(state.A, state.query, state.rows, hide, openLayer, state.layer);
  if (state.layerProbs) {
    const windows = state.info ? state.info.architecture.windows : [];
    Panels.layerHeatmaps(state.A, state.layer, state.layerProbs, hide, windows[state.layer]);
  }
  $("sink-note").hidden = !hide;
}

async function openLayer(l) {
  try {
    const r = await API.get(`/api/attention_layer?id=${state.A.id}&layer=${l}`);
    state.layer = l;
    state.layerProbs = r.probs;
    drawAttention();
    writeURL();
  } catch (e) { status("error: " + e.message); }
}

async function showMerges() {
  const text = $("merge-word").value;
  if (!text) return;
  try { Panels.merges(await API.get("/api/merges", {text, tokenizer: +$("merge-tok").value || 0})); }
  catch (e) { $("merges").textContent = e.message; }
}

function pickPart(p) {
  const box = $("part-info");
  box.replaceChildren();
  const add = (tag, text) => box.appendChild(Object.assign(document.createElement(tag), {textContent: text}));
  add("b", p.name);
  add("div", `shape: ${p.shape}`);
  add("code", p.function);
  if (p.note) add("div", p.note);
  const panel = PANELS[p.panel];
  if (panel && !$(panel).hidden) {
    const a = Object.assign(document.createElement("a"), {href: "#" + panel, textContent: "see its numbers →"});
    box.appendChild(a);
  } else if (panel) add("div", "(analyse a prompt to see its numbers)");
}

// Panel 7: one item scored; with serve.py --hellaswag, the file's items one by one and a running score.
function endings() { return [...document.querySelectorAll(".ending-in")].map(e => e.value); }
async function scoreItem() {
  const body = {context: $("eval-context").value, endings: endings(), label: +$("eval-label").value};
  try {
    const r = await API.get("/api/choice", body);
    Panels.choice(r, body.endings);
    return r;
  } catch (e) { $("choice-result").textContent = "error: " + e.message; return null; }
}
async function loadItem(k) {
  const it = await API.get(`/api/eval_item?index=${k}`);
  state.item = it.index;
  $("eval-pos").textContent = `HellaSwag item ${it.index} of ${it.count}`;
  $("eval-context").value = it.context;
  const ins = document.querySelectorAll(".ending-in");
  it.endings.forEach((e, i) => { if (ins[i]) ins[i].value = e; });
  $("eval-label").value = String(it.label);
  return it;
}
async function runItems(n) {
  let right = 0, done = 0;
  for (let k = 0; k < n; k++) {
    if (state.item + 1 >= state.info.eval_items) break;
    await loadItem(state.item + 1);
    const r = await scoreItem();
    if (!r) return;
    done++;
    if (r.pred_norm === r.label) right++;
    $("eval-score").textContent = `acc_norm ${right}/${done} here`;
  }
}

async function savedHTML() {
  // only what is drawn now: the answers this view fetched (no prefetching of other positions)
  const css = await (await fetch("/static/style.css")).text();
  const scripts = [];
  for (const name of ["api.js", "draw.js", "panels.js", "attention.js", "lens.js", "evaluation.js", "training.js",
                      "diagram.js", "app.js"]) scripts.push(await (await fetch("/static/" + name)).text());
  const body = document.body.cloneNode(true);
  body.querySelectorAll("script").forEach(s => s.remove());
  for (const id of ["diagram", "attention", "att-layer", "norms", "push", "curves"]) {
    const e = body.querySelector("#" + id);
    if (e) e.replaceChildren();          // redrawn from the saved answers when the file opens
  }
  const saved = {cache: API.cache, search: location.search};
  const data = JSON.stringify(saved).replace(/</g, "\\u003c");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>saved view: ${document.title}</title><style>${css}</style></head><body>${body.innerHTML}` +
    `<script>window.TINYLLAMA_SAVED = ${data};<\/script>` +
    scripts.map(s => `<script>${s.replace(/<\/script/g, "<\\/script")}<\/script>`).join("") + `</body></html>`;
}
window.tinyllamaSavedHTML = savedHTML;

async function save() {
  status("saving…");
  const html = await savedHTML();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([html], {type: "text/html"}));
  a.download = "tinyllama-view.html";
  a.click();
  status(`saved: one HTML file (${Math.round(html.length / 1024)} kB) that opens offline`);
}

let resized = null;
function redraw() {   // on a new window width: the parts drawn to fit it
  if (state.info) Diagram.draw(state.info.architecture, pickPart);
  if (state.rows) drawAttention();
}

async function init() {
  const view = readURL();
  try {
    const info = await API.get("/api/info");
    state.info = info;
    $("model-name").textContent = info.model.split("/").pop();
    Diagram.draw(info.architecture, pickPart);
    $("merge-tok").replaceChildren(...info.tokenizers.map((n, i) => Object.assign(document.createElement("option"), {value: i, textContent: n})));
    $("eval-items").hidden = !info.eval_items;
    if (info.report) Panels.report(info.report);
    if (info.training) Panels.training((await API.get("/api/training")).rows, info.tuned_from);
  } catch (e) { status("error: " + e.message); }
  $("controls").onsubmit = e => { e.preventDefault(); writeURL(); analyse({step: 0, query: null, layer: state.layer}); };
  $("save").onclick = save;
  $("prev").onclick = () => state.A && state.step > 0 && showStep(state.step - 1);
  $("next").onclick = () => state.A && state.step < state.A.timeline.length - 1 && showStep(state.step + 1);
  $("step").oninput = () => state.A && showStep(+$("step").value);
  $("hide-sink").onchange = () => { if (state.rows) drawAttention(); writeURL(); };
  $("merge-word").onchange = showMerges;
  $("merge-tok").onchange = showMerges;
  $("eval-score-one").onclick = scoreItem;
  $("eval-prev").onclick = () => state.item > 0 && loadItem(state.item - 1).then(scoreItem);
  $("eval-next").onclick = () => state.item + 1 < state.info.eval_items && loadItem(state.item + 1).then(scoreItem);
  $("eval-run").onclick = () => runItems(10);
  window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(redraw, 150); });
  document.addEventListener("keydown", e => {
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    if (e.key === "ArrowLeft") $("prev").click();
    if (e.key === "ArrowRight") $("next").click();
  });
  if (API.saved) { $("run").disabled = true; $("save").disabled = true; }
  if (view.run) await analyse(view);
}
init();
