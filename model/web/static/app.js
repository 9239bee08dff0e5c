// The page's state (kept in the URL), its controls, and "Save this view".
"use strict";
const state = {A: null, step: 0, query: null, rows: null, shown: null};
const FIELDS = ["prompt", "system", "max", "temperature", "top_k", "top_p", "seed"];

function status(text) { $("status").textContent = text; }

function readURL() {
  const q = new URLSearchParams(API.saved ? API.saved.search : location.search);
  for (const f of FIELDS) if (q.has(f)) $(f).value = q.get(f);
  $("chat").checked = q.get("chat") === "1";
  $("speculate").checked = q.get("spec") === "1";
  return {run: q.has("prompt"), step: +(q.get("step") || 0), query: q.has("pos") ? +q.get("pos") : null};
}

function writeURL() {
  if (API.saved) return;
  const q = new URLSearchParams();
  for (const f of FIELDS) if ($(f).value !== "") q.set(f, $(f).value);
  if ($("chat").checked) q.set("chat", "1");
  if ($("speculate").checked) q.set("spec", "1");
  if (state.A) { q.set("step", state.step); if (state.query !== null) q.set("pos", state.query); }
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
    Panels.tokens(t.tokens, t.rendered, t.tokens.length, pickPosition);
    const word = (req.text.match(/\S+/) || [""])[0].slice(0, 40);
    if (!$("merge-word").value) $("merge-word").value = word;
    showMerges();
    API.get("/api/compare", {text: req.text}).then(Panels.compare).catch(e => status(e.message));
    status("running the model…");
    const A = await API.get("/api/analyze", req);
    state.A = A;
    Panels.tokens(A.tokens, A.rendered, A.prompt_tokens, pickPosition, A.timeline);
    const step = Math.min(view.step || 0, Math.max(A.timeline.length - 1, 0));
    await showStep(step, view.query);
    $("save").disabled = false;
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

async function pickPosition(k, quiet) {
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

function drawAttention() {
  state.shown = Panels.attention(state.A, state.query, state.rows, $("hide-sink").checked, zoom);
  $("sink-note").hidden = !$("hide-sink").checked;
}
function zoom(l, h) { Panels.zoom(state.A, state.shown, l, h); }

async function showMerges() {
  const text = $("merge-word").value;
  if (!text) return;
  try { Panels.merges(await API.get("/api/merges", {text, tokenizer: +$("merge-tok").value || 0})); }
  catch (e) { $("merges").textContent = e.message; }
}

async function savedHTML() {
  // prefetch what the panels may show later (every position's attention and lens), when small
  const A = state.A;
  if (A && A.tokens.length <= 96) {
    for (let k = 0; k < A.tokens.length; k++) {
      await API.get(`/api/attention?id=${A.id}&query=${k}`);
      await API.get(`/api/lens?id=${A.id}&position=${k}`);
    }
  }
  const css = await (await fetch("/static/style.css")).text();
  const scripts = [];
  for (const name of ["api.js", "draw.js", "panels.js", "app.js"]) scripts.push(await (await fetch("/static/" + name)).text());
  const body = document.body.cloneNode(true);
  body.querySelectorAll("script").forEach(s => s.remove());
  const saved = {cache: API.cache, search: location.search};
  const data = JSON.stringify(saved).replace(/</g, "\\u003c");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>saved view: ${document.title}</title>` +
    `<style>${css}</style></head><body>${body.innerHTML}<script>window.TINYLLAMA_SAVED = ${data};<\/script>` +
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
  status("saved: one HTML file that opens offline");
}

async function init() {
  const view = readURL();
  try {
    const info = await API.get("/api/info");
    $("model-name").textContent = info.model.split("/").pop();
    $("merge-tok").replaceChildren(...info.tokenizers.map((n, i) => Object.assign(document.createElement("option"), {value: i, textContent: n})));
    if (info.training) Panels.training((await API.get("/api/training")).rows);
  } catch (e) { status("error: " + e.message); }
  $("controls").onsubmit = e => { e.preventDefault(); writeURL(); analyse({step: 0, query: null}); };
  $("save").onclick = save;
  $("prev").onclick = () => state.A && state.step > 0 && showStep(state.step - 1);
  $("next").onclick = () => state.A && state.step < state.A.timeline.length - 1 && showStep(state.step + 1);
  $("step").oninput = () => state.A && showStep(+$("step").value);
  $("hide-sink").onchange = () => state.rows && drawAttention();
  $("merge-word").onchange = showMerges;
  $("merge-tok").onchange = showMerges;
  document.addEventListener("keydown", e => {
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    if (e.key === "ArrowLeft") $("prev").click();
    if (e.key === "ArrowRight") $("next").click();
  });
  if (API.saved) { $("run").disabled = true; $("save").disabled = true; }
  if (view.run) await analyse(view);
}
init();
