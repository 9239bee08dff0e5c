"""The page's server: routes validate (in-process, Starlette's test client), and the page itself in a
real headless Chromium (Debian's, driven by Selenium with its matching chromium-driver)."""
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from model.formats.loader import load

from conftest import fixture_path, needed, smollm2_gguf_path
from testkit.servers import running_server

starlette = pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from model.web import server as web  # noqa: E402


@pytest.fixture(scope="module")
def loaded():
    return load(str(smollm2_gguf_path()))


@pytest.fixture(scope="module")
def client(loaded):
    from bpe.files import load_tokenizer
    app = web.create_app(loaded, tokenizers=[("llama2", load_tokenizer(fixture_path("llama2-tokenizer.model")))],
                         hosts={"testserver"})
    return TestClient(app)


def test_routes_answer_what_the_library_computes(client, loaded):
    tok = loaded.tokenizer
    r = client.post("/api/tokens", json={"text": "Hello world"})
    assert r.status_code == 200 and [t["id"] for t in r.json()["tokens"]] == tok.encode("Hello world")
    r = client.post("/api/merges", json={"text": " tokenizer", "tokenizer": 1})
    from bpe.files import load_tokenizer
    assert r.json()["ids"] == load_tokenizer(fixture_path("llama2-tokenizer.model")).encode(" tokenizer")
    r = client.post("/api/compare", json={"text": "naïve tokenizers"})
    assert [t["count"] for t in r.json()["tokenizers"]][0] == len(tok.encode("naïve tokenizers"))
    a = client.post("/api/analyze", json={"text": "The capital of France is", "max_new_tokens": 3}).json()
    ids = tok.encode("The capital of France is")
    loaded.model.new_cache(64)
    first = int(np.argmax(loaded.model.forward(ids)))
    assert a["timeline"][0]["token"] == first and a["timeline"][0]["candidates"][0]["id"] == first
    lens = client.get(f"/api/lens?id={a['id']}&position={len(ids) - 1}").json()
    assert lens["layers"][-1][0]["id"] == first
    rows = client.get(f"/api/attention?id={a['id']}&query=2").json()["rows"]
    assert np.array(rows).shape == (30, 9, 3) and np.allclose(np.array(rows).sum(-1), 1, atol=1e-3)


BAD = [
    ("post", "/api/tokens", b"{not json", 400, "JSON"),
    ("post", "/api/tokens", b"[1, 2]", 400, "object"),
    ("post", "/api/tokens", b'{"text": 5}', 400, "'text'"),
    ("post", "/api/tokens", b'{"text": "   "}', 400, "empty"),
    ("post", "/api/tokens", json.dumps({"text": "a " * 9000}).encode(), 400, "context"),
    ("post", "/api/analyze", b'{"text": "hi", "temperature": NaN}', 400, "temperature"),
    ("post", "/api/analyze", b'{"text": "hi", "max_new_tokens": -1}', 400, "max_new_tokens"),
    ("post", "/api/analyze", b'{"text": "hi", "top_k": "5"}', 400, "top_k"),
    ("post", "/api/analyze", b'{"text": "hi", "max_new_tokens": 100000}', 400, "max_new_tokens"),
    ("post", "/api/merges", b'{"text": ""}', 400, "text"),
    ("post", "/api/merges", b'{"text": "a", "tokenizer": 9}', 400, "tokenizer"),
    ("get", "/api/attention?id=nope&query=1", None, 404, "analysis"),
    ("get", "/api/training", None, 404, "log"),
    ("get", "/api/nothing", None, 404, "no route"),
    ("get", "/static/../server.py", None, 404, ""),
    ("get", "/static/%2e%2e/server.py", None, 404, ""),
    ("get", "/static//etc/passwd", None, 404, ""),
    ("post", "/api/tokens", b'{"text": "' + b"a" * (2 << 20) + b'"}', 413, "larger"),
]


@pytest.mark.parametrize("method,path,body,status,word", BAD)
def test_bad_requests_get_a_4xx_with_a_reason(client, method, path, body, status, word):
    r = client.post(path, content=body) if method == "post" else client.get(path)
    assert r.status_code == status, r.text
    assert word in r.json()["error"] and "\n" not in r.json()["error"]
    assert client.post("/api/tokens", json={"text": "still here"}).status_code == 200


def test_host_check_and_no_cors(client):
    assert client.get("/api/info", headers={"Host": "attacker.example:8000"}).status_code == 403
    r = client.get("/api/info", headers={"Origin": "http://attacker.example"})
    assert r.status_code == 200 and not any(h.lower().startswith("access-control") for h in r.headers)


def test_static_files_stay_in_their_folder(loaded, tmp_path, monkeypatch):
    static = tmp_path / "static"
    shutil.copytree(web.STATIC, static)
    (tmp_path / "secret.txt").write_text("secret")
    (static / "link.txt").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setattr(web, "STATIC", static.resolve())
    c = TestClient(web.create_app(loaded, hosts={"testserver"}))
    assert c.get("/static/app.js").status_code == 200
    assert c.get("/static/link.txt").status_code == 404


def test_a_trained_folder_shows_its_training_log(tmp_path):
    import subprocess
    import sys
    from conftest import ROOT
    (tmp_path / "c.txt").write_text(fixture_path("tinyshakespeare.txt").read_text()[:20000])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), "--input", str(tmp_path / "c.txt"),
                          "--out", str(tmp_path / "run"), "--steps", "4", "--eval-every", "2", "--layers", "1",
                          "--dim", "32", "--context", "32"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    c = TestClient(web.create_app(load(str(tmp_path / "run")), folder=tmp_path / "run", hosts={"testserver"}))
    rows = c.get("/api/training").json()["rows"]
    assert [r["step"] for r in rows] == [0, 2, 4] and all("sample" in r for r in rows)
    assert c.get("/api/info").json()["training"] is True


def test_slow_body_times_out_and_the_server_goes_on():
    with running_server("--model", str(smollm2_gguf_path()), "--timeout", "1") as (url, _):
        host, port = url[len("http://"):].rstrip("/").split(":")
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /api/tokens HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"te")
        s.settimeout(10)
        data = b""
        while True:                      # the reply may come in several segments: read until the server closes
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        s.close()
        reply = data.decode()
        assert " 408 " in reply.splitlines()[0] and "did not arrive" in reply
        import urllib.request
        with urllib.request.urlopen(url + "api/info", timeout=10) as r:
            assert r.status == 200


# --- the page in a real browser ---------------------------------------------------------------------
def browser():
    """Selenium on Debian's chromium and chromium-driver, never a downloaded browser."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        needed("no browser: apt-get install -y chromium chromium-driver")
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800", "--disable-dev-shm-usage"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def wait_for(driver, fn, seconds=60):
    """fn()'s first true value; on a timeout the error says the page's status line."""
    from testkit.browser import until
    return until(fn, seconds, lambda: "status: " + driver.find_element("id", "status").text)


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


@pytest.mark.browser
def test_the_page_in_headless_chromium(tmp_path, loaded):
    tok, model = loaded.tokenizer, loaded.model
    prompt = "The capital of France is"
    d = browser()
    try:
        with running_server("--model", str(smollm2_gguf_path())) as (url, _):
            from urllib.parse import quote
            d.get(url + "?prompt=" + quote(prompt) + "&max=4")
            wait_for(d, lambda: "new tokens" in d.find_element("id", "status").text)
            shown = [int(c.get_attribute("data-id")) for c in d.find_elements("css selector", "#tokens .tok")]
            ids = tok.encode(prompt)
            assert shown[:len(ids)] == ids                           # the tokens our tokenizer gives
            model.new_cache(64)
            first = int(np.argmax(model.forward(ids)))
            top = d.find_element("css selector", "#candidates tbody tr")
            assert int(top.get_attribute("data-id")) == first       # the top next token is our model's
            assert "drawn" in top.get_attribute("class")
            assert int(d.find_element("css selector", "#lens tr[data-top]").get_attribute("data-top")) == first
            assert len(d.find_elements("css selector", "#attention canvas.strip")) == 30 * 9
            label = d.find_element("id", "step-label").text
            d.find_element("tag name", "body").send_keys("\ue014")  # ArrowRight steps the timeline
            wait_for(d, lambda: d.find_element("id", "step-label").text != label)
            wait_for(d, lambda: "step=1" in d.current_url)             # the state is in the URL
            errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, errors
            outside = [u for u in requested_urls(d) if not u.startswith(url) and not u.startswith(("data:", "blob:"))]
            assert not outside, outside
            html = d.execute_async_script("window.tinyllamaSavedHTML().then(arguments[arguments.length - 1])")
        saved = tmp_path / "view.html"
        saved.write_text(html, encoding="utf-8")
        d.execute_cdp_cmd("Network.enable", {})
        d.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                               "downloadThroughput": 0, "uploadThroughput": 0})
        d.get_log("performance")
        d.get(saved.as_uri())                                          # the server is gone: offline
        wait_for(d, lambda: d.find_elements("css selector", "#candidates tbody tr"))
        again = [int(c.get_attribute("data-id")) for c in d.find_elements("css selector", "#tokens .tok")]
        assert again == shown
        assert len(d.find_elements("css selector", "#attention canvas.strip")) == 30 * 9
        assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert all(u.startswith(("file:", "data:", "blob:")) for u in requested_urls(d))
    finally:
        d.quit()


@pytest.mark.browser
def test_the_page_typed_and_clicked_like_a_person(client):
    """Type a prompt and settings (top-p 0.9, temperature 0.75: values a number field's step could refuse),
    click Analyse, and read the panels: they show what /api/analyze computes for the same settings."""
    prompt, settings = "Once upon a time", {"max": "5", "temperature": "0.75", "top_k": "40", "top_p": "0.9", "seed": "7"}
    d = browser()
    try:
        with running_server("--model", str(smollm2_gguf_path())) as (url, _):
            d.get(url)
            d.find_element("id", "prompt").send_keys(prompt)
            for field, value in settings.items():
                box = d.find_element("id", field)
                box.clear()
                box.send_keys(value)
            d.find_element("id", "run").click()
            wait_for(d, lambda: "new tokens" in d.find_element("id", "status").text)
            assert d.execute_script("return document.getElementById('controls').checkValidity()")
            for field, value in settings.items():
                assert f"{field}={value}" in d.current_url
            shown = [int(c.get_attribute("data-id")) for c in d.find_elements("css selector", "#tokens .tok")]
            ids_line = d.find_element("id", "token-ids").text                # the ids, in order, under the tokens
            assert ids_line == "===> [" + ", ".join(map(str, shown)) + "]"
            assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        d.quit()
    a = client.post("/api/analyze", json={"text": prompt, "max_new_tokens": 5, "temperature": 0.75, "top_k": 40,
                                          "top_p": 0.9, "seed": 7}).json()
    assert shown == [t["id"] for t in a["tokens"]]


# --- the explainer's routes (issue 27) ----------------------------------------------------------------
def causal_square(rows) -> np.ndarray:
    """[H][T][t + 1] rows (the causal triangle the route sends) as [H, T, T] with zeros above it."""
    H, T = len(rows), len(rows[0])
    out = np.zeros((H, T, T))
    for h in range(H):
        for t, row in enumerate(rows[h]):
            out[h, t, :len(row)] = row
    return out


def test_attention_layer_route_is_the_blocks_own_attention(client, loaded):
    from model.lens import attention_matrix, trace_sequence
    a = client.post("/api/analyze", json={"text": "One two three four", "max_new_tokens": 2}).json()
    ids = [t["id"] for t in a["tokens"]]
    rows = client.get(f"/api/attention_layer?id={a['id']}&layer=3").json()["probs"]
    assert [len(r) for r in rows[0]] == list(range(1, len(ids) + 1))     # row t stops at key t: the mask's zeros stay
    probs = causal_square(rows)
    expected = attention_matrix(loaded.model, trace_sequence(loaded.model, ids), 3)
    assert probs.shape == (9, len(ids), len(ids))
    np.testing.assert_allclose(probs, expected, atol=6e-5)
    assert np.allclose(probs.sum(-1), 1, atol=1e-3)                       # each row a distribution
    # the same rows the forward with a KV cache computes, one query at a time
    rows = client.get(f"/api/attention?id={a['id']}&query=4").json()["rows"]
    np.testing.assert_allclose(np.array(rows)[3], probs[:, 4, :5], atol=2e-4)
    for bad in ("layer=30", "layer=-1", "layer=x", ""):
        r = client.get(f"/api/attention_layer?id={a['id']}&{bad}")
        assert r.status_code == 400 and "layer" in r.json()["error"], (bad, r.text)


def test_only_the_newest_analysis_keeps_its_attention(client, loaded):
    """Kept analyses hold at most one attention [L, H, T, T] (up to 64 MB each, 8 kept): an older one's
    layer is recomputed when asked, and it is still the block's own attention."""
    from model.lens import attention_matrix, trace_sequence
    first = client.post("/api/analyze", json={"text": "Red green blue", "max_new_tokens": 1}).json()
    second = client.post("/api/analyze", json={"text": "Cats and dogs", "max_new_tokens": 1}).json()
    kept = client.app.app.state.s.analyses                        # client.app is the Host check around the app
    assert kept[first["id"]].trace.probs is None and kept[second["id"]].trace.probs is not None
    ids = [t["id"] for t in first["tokens"]]
    probs = causal_square(client.get(f"/api/attention_layer?id={first['id']}&layer=2").json()["probs"])
    np.testing.assert_allclose(probs, attention_matrix(loaded.model, trace_sequence(loaded.model, ids), 2), atol=6e-5)


def test_choice_route_scores_as_evaluate_does(client, loaded):
    from model.evaluation.choices import score_item
    from model.evaluation.datasets import Item
    item = Item("The sun rises in the", ("east every morning.", "refrigerator at noon.", "west."), 0)
    r = client.post("/api/choice", json={"context": item.context, "endings": list(item.choices), "label": 0}).json()
    s = score_item(loaded.model, loaded.tokenizer, item, 0)
    assert (r["pred"], r["pred_norm"]) == (s.pred, s.pred_norm)
    np.testing.assert_allclose(r["logprob_mean"], s.logprob_mean, atol=1e-6)
    assert [[t["id"] for t in e["tokens"]] for e in r["endings"]] == s.tokens
    for body, word in [({"context": "x", "endings": ["a"]}, "endings"), ({"context": "x", "endings": "ab"}, "endings"),
                       ({"context": "x", "endings": ["a", " "]}, "endings"), ({"endings": ["a", "b"]}, "context"),
                       ({"context": " ", "endings": ["a", "b"]}, "context"),
                       ({"context": "x", "endings": ["a", "b"], "label": 5}, "label")]:
        bad = client.post("/api/choice", json=body)
        assert bad.status_code == 400 and word in bad.json()["error"], (body, bad.text)


def test_eval_items_and_the_architecture(loaded, tmp_path):
    from model.evaluation.datasets import read_hellaswag
    path = tmp_path / "items.txt"
    path.write_text("A cat sits. It\n1\nflies.\npurrs.\nsings.\nreads.\n", encoding="utf-8")
    c = TestClient(web.create_app(loaded, hosts={"testserver"}, eval_items=read_hellaswag(path)))
    item = c.get("/api/eval_item?index=0").json()
    assert item["count"] == 1 and item["label"] == 1 and item["endings"][1] == "purrs."
    assert c.get("/api/eval_item?index=1").status_code == 400
    assert TestClient(web.create_app(loaded, hosts={"testserver"})).get("/api/eval_item?index=0").status_code == 404
    arch = c.get("/api/info").json()["architecture"]
    names = [p["name"] for p in arch["block"]]
    assert names.count("RMSNorm") == 2 and "q/k RMSNorm" not in names and arch["layers"] == 30
    assert all(p["function"].startswith(("model/", "bpe")) for p in arch["before"] + arch["block"] + arch["after"])


def test_serve_refuses_a_bad_report_or_items_file_in_one_line(tmp_path):
    import subprocess
    import sys
    from conftest import ROOT, assert_clean_error
    bad = tmp_path / "card.json"
    bad.write_text('{"model": "x", "results": {"hellaswag": {"acc": 1}}}')
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "scripts" / "serve.py"), "--port", "0", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    assert_clean_error(run("--report", str(bad)), "--report", "acc_norm")
    assert_clean_error(run("--report", str(tmp_path / "missing.json")), "--report", "missing.json")
    items = tmp_path / "items.txt"
    items.write_text("ctx\nseven\na\nb\nc\nd\n")
    assert_clean_error(run("--hellaswag", str(items)), "--hellaswag", "items.txt:2", "seven")


def test_the_diagram_follows_the_config():
    """Gemma 3's four norms and q/k norms, Qwen3's q/k norms, sliding windows: from the config alone."""
    from model.config import LlamaConfig
    from model.page_data import architecture
    base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, vocab_size=100, max_position_embeddings=64, rms_norm_eps=1e-6,
                rope_theta=10000.0, tie_word_embeddings=True)
    gemma = architecture(LlamaConfig(**base, model_type="gemma3_text", qk_norm=True, sandwich_norms=True,
                                     mlp_act="gelu_tanh", windows=(8, 8, 8, 8, 8, None)))
    names = [p["name"] for p in gemma["block"]]
    assert names.count("RMSNorm") == 4 and "q/k RMSNorm" in names and gemma["windows"] == [8] * 5 + [None]
    assert "geglu" in next(p for p in gemma["block"] if p["name"] == "MLP")["function"]
    qwen = architecture(LlamaConfig(**base, model_type="qwen3", qk_norm=True))
    assert [p["name"] for p in qwen["block"]].count("RMSNorm") == 2 and "q/k RMSNorm" in [p["name"] for p in qwen["block"]]


def test_a_tuned_folder_says_what_it_started_from(loaded, tmp_path):
    """A folder the trainer tuned (trainer_state.json with init and sft or dpo): the page shows its samples
    before and after, side by side; a pretraining run's or a plain model's folder says nothing."""
    import json as _json
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "log.jsonl").write_text("".join(_json.dumps({"step": k, "train_loss": 2.0 - k / 10, "val_loss": 2.1,
                                                            "sample": f"answer {k}"}) + "\n" for k in (0, 5)))
    for state, expected in [({"init": "smollm2", "sft": "/d.json", "lora": {"r": 8}}, {"init": "smollm2",
                                                                                       "how": "SFT with LoRA"}),
                            ({"init": "runs/sft", "dpo": "/p.json"}, {"init": "runs/sft", "how": "DPO"}),
                            ({"corpus": "/c.txt"}, None)]:
        (folder / "trainer_state.json").write_text(_json.dumps(state))
        info = TestClient(web.create_app(loaded, folder=folder, hosts={"testserver"})).get("/api/info").json()
        assert info["tuned_from"] == expected and info["training"]
