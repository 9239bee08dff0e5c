"""The page as an explainer (issue 27), driven in Debian's Chromium like a person: at 500 and 1400 px
wide, on SmolLM2 and on Gemma 3. No horizontal scrollbar, no script error, no request off the machine,
and each panel's numbers equal what the library computes for the same prompt."""

import numpy as np
import pytest

from conftest import gemma3_gguf_path, smollm2_gguf_path
from test_web import browser, causal_square, requested_urls, wait_for
from testkit.servers import running_server

pytestmark = pytest.mark.browser

MODELS = {"smollm2": smollm2_gguf_path, "gemma3": gemma3_gguf_path}
PROMPT = "The capital of France is"


@pytest.fixture(scope="module", params=list(MODELS))
def served(request):
    from model.formats.loader import load
    path = MODELS[request.param]()
    loaded = load(str(path))
    with running_server("--model", str(path), "--hellaswag", str(hellaswag_file(request.node)),
                        "--report", str(report_file(request.node))) as (url, _):
        yield request.param, loaded, url


CARD = {"model": "/models/x.gguf", "sha256": "ab" * 32, "date": "2026-12-07 00:00:00", "seconds": 1.0,
        "method": "ours: llama.cpp's scoring", "published": {"model": "x", "hellaswag": {"value": 40.9, "how": "0-shot"}},
        "results": {"perplexity": {"ppl": 22.5003, "stderr": 0.3, "chunks": 40, "ctx": 512},
                    "hellaswag": {"acc": 0.35, "acc_norm": 0.4075, "items": 400, "acc_interval": [0.3, 0.4],
                                  "acc_norm_interval": [0.3604, 0.4563]}}}


def report_file(node):
    """A report card as evaluate.py --report writes it (the page shows its numbers as they are)."""
    import json
    path = node.config.cache.makedir("page") / "report.json"
    path.write_text(json.dumps(CARD), encoding="utf-8")
    return path


def hellaswag_file(node):
    """Two made-up items in llama.cpp's six-line format (label 0 and 1)."""
    path = node.config.cache.makedir("page") / "items.txt"
    path.write_text("A chef cuts vegetables. He\n0\nputs them into a pot of soup.\nflies to the moon.\n"
                    "eats the knife.\nsings to the carrots.\nA girl opens a book. She\n1\nthrows it into a lake.\n"
                    "reads the first page.\ncooks it for dinner.\nwears it as a hat.\n", encoding="utf-8")
    return path


def no_sideways_scroll(d):
    return d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", [500, 1400])
def test_the_page_explains_at_every_width(served, width):
    name, loaded, url = served
    model, tok = loaded.model, loaded.tokenizer
    cfg = model.cfg
    d = browser()
    try:
        d.set_window_size(width, 1000)
        d.get(url)
        wait_for(d, lambda: d.find_elements("css selector", "#diagram svg .part"))
        # the first screen: an invitation with examples, the model's diagram, no empty panels
        assert len(d.find_elements("css selector", "#examples a")) >= 2
        assert all(not p.is_displayed() for p in d.find_elements("css selector", ".after-analysis"))
        parts = [p.get_attribute("aria-label") for p in d.find_elements("css selector", "#diagram svg .part")]
        block_norms = sum(1 for p in parts if p.startswith("RMSNorm"))
        assert block_norms == (4 if cfg.sandwich_norms else 2), parts
        assert any(p.startswith("q/k RMSNorm") for p in parts) == cfg.qk_norm
        d.find_elements("css selector", "#diagram svg .part")[3].click()     # a part names its function
        assert "model/" in d.find_element("id", "part-info").text
        assert no_sideways_scroll(d)
        card = d.find_element("id", "report").text                              # the report card, as in its file
        assert "22.5003" in card and "40.75" in card and "36.04 – 45.63" in card and "40.9" in card
        # type the prompt, click Analyse
        d.find_element("id", "prompt").send_keys(PROMPT)
        box = d.find_element("id", "max")
        box.clear()
        box.send_keys("3")
        d.find_element("id", "run").click()
        wait_for(d, lambda: "new tokens" in d.find_element("id", "status").text, 120)
        wait_for(d, lambda: d.find_elements("css selector", "#att-layer canvas.heat"), 60)
        ids = tok.encode(PROMPT, bos=tok.add_bos)
        shown = [int(c.get_attribute("data-id")) for c in d.find_elements("css selector", "#tokens .tok")]
        assert shown[:len(ids)] == ids
        labels = [c.text for c in d.find_elements("css selector", "#tokens .tok")]
        assert any(t.startswith("␣") for t in labels) and not any(" " in t for t in labels)   # spaces made visible
        # timeline: greedy with top-p 1: the filters say "off", never "cut"
        cells = [td.text for td in d.find_elements("css selector", "#candidates tbody td")]
        assert "off" in cells and "cut" not in cells
        # attention: an overview cell per (layer, head), then a layer's heatmaps equal to the library's
        assert len(d.find_elements("css selector", "#attention canvas.strip")) == cfg.num_hidden_layers * \
            cfg.num_attention_heads
        strips = d.find_elements("css selector", "#attention canvas.strip")
        layer = 1
        strips[layer * cfg.num_attention_heads].click()
        wait_for(d, lambda: d.execute_script("return state.layer") == layer)
        from model.lens import attention_matrix, logit_lens, trace_sequence
        all_ids = shown
        trace = trace_sequence(model, all_ids)
        probs = causal_square(d.execute_script("return state.layerProbs"))
        np.testing.assert_allclose(probs, attention_matrix(model, trace, layer), atol=6e-5)
        assert len(d.find_elements("css selector", "#att-layer canvas.heat")) == cfg.num_attention_heads
        before = d.execute_script("return document.querySelector('#att-layer canvas.heat').toDataURL()")
        overview = d.execute_script("return document.querySelector('#attention canvas.strip').toDataURL()")
        d.find_element("id", "hide-sink").click()                              # the sink toggle redraws both
        assert d.execute_script("return document.querySelector('#att-layer canvas.heat').toDataURL()") != before
        assert d.execute_script("return document.querySelector('#attention canvas.strip').toDataURL()") != overview
        # the lens as a coloured grid: the library's top tokens and probabilities at the last prompt position
        position = len(ids) - 1
        expected = logit_lens(model, trace, position, 5)
        grid = d.find_elements("css selector", "#lens tr")[1:]
        assert len(grid) == len(expected)
        for row, top in zip(grid, expected):
            cells = row.find_elements("css selector", "td.cellp")
            assert [int(c.get_attribute("data-id")) for c in cells] == [i for i, _ in top]
            assert np.allclose([float(c.get_attribute("data-p")) for c in cells], [p for _, p in top], atol=1e-6)
            assert all("rgb" in c.get_attribute("style") for c in cells)
        ticks = d.execute_script("return [...document.querySelectorAll('#norms svg text')].map(t => t.textContent)")
        layer_ticks = [t for t in ticks if t.isdigit()]
        assert layer_ticks and not any(t.endswith(".00") for t in ticks)       # whole layers on the axis
        # evaluation: the served items, scored as evaluate.py scores them
        d.find_element("id", "eval-next").click()                             # the file's first item
        wait_for(d, lambda: len(d.find_elements("css selector", "#choice-result .ending")) == 4, 60)
        assert "item 0 of 2" in d.find_element("id", "eval-pos").text
        from model.evaluation.choices import score_item
        from model.evaluation.datasets import Item
        item = Item("A chef cuts vegetables. He", ("puts them into a pot of soup.", "flies to the moon.",
                                                   "eats the knife.", "sings to the carrots."), 0)
        scored = score_item(model, tok, item, 1)
        for k, row in enumerate(d.find_elements("css selector", "#choice-result .ending")):
            got = [float(c.get_attribute("data-logprob")) for c in row.find_elements("css selector", ".tok")]
            np.testing.assert_allclose(got, scored.token_logprobs[k], atol=2e-5)
        d.find_element("id", "eval-run").click()                               # watch the rest being scored
        wait_for(d, lambda: "acc_norm" in d.find_element("id", "eval-score").text, 60)
        assert "item 1 of 2" in d.find_element("id", "eval-pos").text
        assert d.find_element("id", "eval-score").text.endswith("/1 here")
        assert no_sideways_scroll(d), d.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
        assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        outside = [u for u in requested_urls(d) if not u.startswith(url) and not u.startswith(("data:", "blob:"))]
        assert not outside, outside
        size = d.execute_async_script("window.tinyllamaSavedHTML().then(h => arguments[0](h.length))")
        assert size < 3_000_000, size                                            # what is drawn, not every array
    finally:
        d.quit()


def readme_page_commands() -> list[list[str]]:
    import shlex
    from conftest import ROOT
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("`scripts/screenshots.py`:\n\n```bash\n")[1].split("```")[0]
    return [shlex.split(line) for line in block.strip().splitlines()]


def test_readme_page_commands_run(tmp_path, request):
    """README's serve line (HellaSwag items and a report card for the page) and its screenshot line."""
    import json
    import urllib.request
    from conftest import FIXTURES
    serve, shots = readme_page_commands()
    assert serve[1] == "scripts/serve.py" and shots[1] == "scripts/screenshots.py"
    card = tmp_path / "report.json"
    card.write_text(json.dumps(CARD), encoding="utf-8")
    args = [a.replace("../shared/fixtures/", str(FIXTURES) + "/").replace("report/report.json", str(card))
            for a in serve[2:]]
    with running_server(*args) as (url, _):
        info = json.loads(urllib.request.urlopen(url + "api/info").read())
        assert info["eval_items"] == 10042 and info["report"]["results"]["perplexity"]["ppl"] == 22.5003
    import subprocess
    import sys
    from conftest import ROOT
    out = tmp_path / "shots"
    res = subprocess.run([sys.executable, str(ROOT / shots[1]), *shots[2:-1], str(out)], capture_output=True,
                         text=True, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    pngs = sorted(out.glob("panel-*.png"))
    assert [p.name for p in pngs] == [f"panel-{n}.png" for n in ("1-model", "2-tokens", "3-merges", "4-generation",
                                                                  "5-attention", "6-lens", "7-evaluation")]
    for p in pngs:
        data = p.read_bytes()
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and w > 1000 and h > 100, (p, w, h)


def test_a_tuned_folder_shows_before_and_after(tmp_path):
    """Panel 8 for a folder the trainer tuned: the loss curve, and the first held-out instruction answered by
    the model it started from (step 0) and by the tuned one (the last step), as log.jsonl has them."""
    import json
    from conftest import fixture_path
    from model.train.loop import train
    from model.train.recipe import TrainSettings
    from model.train.runs import new_run
    from testkit.checkpoints import write_checkpoint

    class Quiet:
        def step(self, *a):
            pass

        def say(self, text):
            pass
    base = write_checkpoint(tmp_path / "base", "gqa", dtype="F32", tokenizer=fixture_path("llama2-tokenizer.model"))
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"instruction": f"Name {k} colours.", "input": "", "output": f"Red and {k} more."}
                                for k in range(12)]))
    run = new_run(None, tmp_path / "run", TrainSettings(steps=4, batch=2, context=64, lr=1e-2, min_lr=1e-3, warmup=1,
                                                        eval_every=2, eval_windows=2),
                  init=str(base), sft=str(data), lora=4, notice=lambda *a: None)
    train(run, progress=Quiet())
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    d = browser()
    try:
        d.set_window_size(500, 1000)
        with running_server("--model", str(tmp_path / "run")) as (url, _):
            d.get(url)
            wait_for(d, lambda: d.find_elements("css selector", "#before-after pre"))
            shown = d.execute_script("return [...document.querySelectorAll('#before-after pre')].map(p => p.textContent)")
            assert shown == [rows[0]["sample"], rows[-1]["sample"]]
            assert "SFT with LoRA" in d.find_element("id", "before-after").text
            assert d.find_elements("css selector", "#curves svg polyline")
            assert no_sideways_scroll(d)
            assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        d.quit()
