"""Training end to end without torch: a tiny corpus overfit, resume bit for bit, the exported folder
loaded by generate.py and its tokenizer read by HF `tokenizers`, and every bad input of train_model.py."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from model.formats.loader import load
from model.train.loop import train
from model.train.recipe import TrainSettings
from model.train.runs import new_run

from conftest import ROOT, assert_clean_error, fixture_path

TINY = dict(layers=2, dim=32, heads=4, kv_heads=2, ffn=64, context=16, batch=8)
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 6


def run_train(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), *args],
                          capture_output=True, text=True, env=env, **kw)


def tiny_args(corpus, out, *extra):
    opts = [a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    return ["--input", str(corpus), "--out", str(out), *opts, *extra]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


def test_a_tiny_corpus_is_overfit_in_seconds(tmp_path, corpus):
    settings = TrainSettings(**TINY, steps=300, lr=1e-2, min_lr=1e-3, warmup=10, eval_every=1000, weight_decay=0.0)
    run = new_run(corpus, tmp_path / "run", settings, notice=lambda m: None)
    t = time.perf_counter()
    final = train(run, evaluate_first=False)
    assert final["train_loss"] < 0.15, final   # ln(vocab) = 3.3 at the start
    assert time.perf_counter() - t < 60


def test_resume_after_ctrl_c_ends_bit_for_bit(tmp_path, corpus):
    common = ("--steps", "400", "--eval-every", "50")
    whole = run_train(*tiny_args(corpus, tmp_path / "whole", *common))
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train_model.py"),
                             *tiny_args(corpus, tmp_path / "cut", *common)], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    state = tmp_path / "cut" / "trainer_state.json"
    deadline = time.time() + 60
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text() or "{}").get("step", 0) >= 50):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err, err
    stopped = json.loads(state.read_text())["step"]
    assert 50 <= stopped < 400
    again = run_train("--resume", str(tmp_path / "cut"))
    assert again.returncode == 0, again.stderr
    from model.weights import load_tensors
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_tensors(tmp_path / "cut" / name), load_tensors(tmp_path / "whole" / name)
        assert a.keys() == b.keys()
        for n in a:
            np.testing.assert_array_equal(a[n], b[n])   # bit for bit
    last = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()][-1]
    resumed = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()][-1]
    assert last["val_loss"] == resumed["val_loss"] and last["whole_val"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    (tmp / "c.txt").write_text(TEXT)
    res = run_train(*tiny_args(tmp / "c.txt", tmp / "run", "--steps", "60", "--eval-every", "30"))
    assert res.returncode == 0, res.stderr
    return tmp / "run"


def test_folder_is_complete_and_logged(exported):
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
            "log.jsonl", "loss.png", "optimizer.safetensors", "trainer_state.json"} <= names
    log = [json.loads(line) for line in (exported / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [0, 30, 60] and log[-1]["whole_val"]
    assert log[0]["val_loss"] == pytest.approx(np.log(len(set(TEXT))), abs=0.1)   # uniform at the start
    assert (exported / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def png_colours(path) -> set:
    """The RGB colours of an 8-bit RGB PNG without interlacing (filter 0 rows, as ours are)."""
    import struct
    import zlib
    data, pos, idat = path.read_bytes(), 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            w, h = struct.unpack(">II", data[pos + 8:pos + 16])
        idat += data[pos + 8:pos + 8 + n] if kind == b"IDAT" else b""
        pos += 12 + n
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (rows[:, 0] == 0).all()
    return set(map(tuple, rows[:, 1:].reshape(-1, 3).tolist()))


def test_loss_png_draws_each_step_and_the_whole_split_apart(exported):
    steps = [json.loads(line) for line in (exported / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps] == list(range(1, 61))
    assert steps[0]["loss"] == pytest.approx(np.log(len(set(TEXT))), abs=0.1)     # uniform at the start
    assert all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in steps)
    colours = png_colours(exported / "loss.png")
    assert {(160, 200, 230), (0, 114, 178), (230, 159, 0), (213, 94, 0)} <= colours   # steps, train, val, whole


def test_samples_start_after_a_newline_as_nanogpts_do(exported):
    log = [json.loads(line) for line in (exported / "log.jsonl").read_text().splitlines()]
    assert all(e["sample"].startswith("\n") for e in log)


def test_generate_talks_with_the_trained_model(exported):
    loaded = load(str(exported))
    tok, model = loaded.tokenizer, loaded.model
    ids = tok.encode("First")
    model.new_cache(16)
    logits, new = model.forward(ids), []
    for _ in range(10):
        new.append(int(np.argmax(logits)))
        logits = model.forward(new[-1:])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", str(exported),
                          "--prompt", "First", "--temperature", "0", "--max-new-tokens", "10"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == tok.decode(ids + new) + "\n"


def test_a_character_model_refuses_chat_and_names_dropped_characters(exported):
    """A char-tokenizer run has no chat template and no EOS token: --chat says so (exit 2); a prompt
    character outside the vocabulary is named in a warning (it is dropped, as HF's tokenizer.json does)."""
    def generate(*args):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", str(exported),
                               "--temperature", "0", "--max-new-tokens", "3", *args],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert_clean_error(generate("--chat", "--prompt", "Speak"), "no chat template", "plain text")
    loaded = load(str(exported))
    with pytest.raises(ValueError, match="no end-of-sequence token"):   # what the server answers with 400
        loaded.chat.encode(loaded.tokenizer, [{"role": "user", "content": "Speak"}])
    res = generate("--prompt", "Fjord Zq")
    assert res.returncode == 0 and res.stdout.startswith("Fjord Zq")
    missing = sorted(set("Fjord Zq") - set(TEXT))
    assert missing and "warning: the vocabulary has no " + ", ".join(map(repr, missing)) in res.stderr


@pytest.mark.parametrize("kind", ["char", "bpe:300"])
def test_hf_tokenizers_reads_our_tokenizer(tmp_path, kind):
    tokenizers = pytest.importorskip("tokenizers")
    text = fixture_path("tinyshakespeare.txt").read_text()[:60000]
    (tmp_path / "c.txt").write_text(text)
    res = run_train(*tiny_args(tmp_path / "c.txt", tmp_path / "r", "--steps", "1", "--tokenizer", kind))
    assert res.returncode == 0, res.stderr
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "r" / "tokenizer.json"))
    ours = load(str(tmp_path / "r")).tokenizer
    sample = text[-3000:] + " naïve 🎉 \t x"
    assert ours.encode(sample) == hf.encode(sample).ids
    assert ours.decode(ours.encode(sample)) == hf.decode(hf.encode(sample).ids)


def test_bpe_larger_than_the_corpus_supports_gets_a_notice(tmp_path, corpus):
    res = run_train(*tiny_args(corpus, tmp_path / "r", "--steps", "1", "--tokenizer", "bpe:5000"))
    assert res.returncode == 0, res.stderr
    assert "supports only" in res.stderr
    assert 256 < json.loads((tmp_path / "r" / "config.json").read_text())["vocab_size"] < 5000


def test_a_loss_that_becomes_nan_stops_with_the_step(tmp_path, corpus):
    res = run_train(*tiny_args(corpus, tmp_path / "r", "--lr", "1e30", "--min-lr", "1e29", "--warmup", "0",
                               "--weight-decay", "0", "--steps", "50"))
    last = res.stderr.strip().splitlines()[-1]   # after the progress lines: one error line
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert last.startswith(("error: the loss became", "error: the gradient norm became")) and "at step" in last \
        and "step 0" in last, last   # which of the two became non-finite (issue 26)
    assert json.loads((tmp_path / "r" / "trainer_state.json").read_text())["step"] == 0
    load(str(tmp_path / "r"))  # the last good checkpoint is complete and loads


def test_bad_input_is_one_line_and_leaves_no_folder(tmp_path, corpus):
    out = tmp_path / "new"
    empty, short = tmp_path / "empty.txt", tmp_path / "short.txt"
    empty.write_text("")
    short.write_text("tiny text")
    cases = [
        (tiny_args(tmp_path / "none.txt", out), "none.txt"),
        (tiny_args(empty, out), "empty"),
        (tiny_args(short, out), "training split"),
        (tiny_args(corpus, out, "--context", "95"), "validation split"),
        (tiny_args(corpus, out, "--steps", "0"), "--steps"),
        (tiny_args(corpus, out, "--lr", "nan"), "--lr"),
        (tiny_args(corpus, out, "--clip", "inf"), "--clip"),
        (tiny_args(corpus, out, "--batch", "-3"), "--batch"),
        (tiny_args(corpus, out, "--heads", "3"), "--heads"),
        (tiny_args(corpus, out, "--kv-heads", "3"), "--kv-heads"),
        (tiny_args(corpus, out, "--tokenizer", "words"), "words"),
        (tiny_args(corpus, out, "--tokenizer", "bpe:x"), "bpe:x"),
        (tiny_args(corpus, corpus / "under" / "a" / "file"), "is not a folder"),
        (["--input", str(corpus), "--out", str(out), "--init", str(corpus)], "--init"),
        (["--input", str(corpus), "--out", str(out), "--init", str(tmp_path / "nothing")], "--init"),
        (["--resume", str(tmp_path / "nothing")], "--resume"),
    ]
    for args, word in cases:
        res = run_train(*args)
        assert_clean_error(res, word)
        assert not out.exists(), args


def test_missing_parent_folders_are_made(tmp_path, corpus):
    res = run_train(*tiny_args(corpus, tmp_path / "runs" / "deep" / "one", "--steps", "2"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "runs" / "deep" / "one" / "model.safetensors").is_file()


def test_an_existing_folder_is_refused_and_untouched(tmp_path, corpus):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert_clean_error(run_train(*tiny_args(corpus, out)), "exists")
    assert_clean_error(run_train(*tiny_args(corpus, out, "--force")), "not a run folder")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_with_another_shape_is_refused(exported):
    before = (exported / "model.safetensors").read_bytes()
    assert_clean_error(run_train("--resume", str(exported), "--dim", "64"), "--dim", "shape")
    assert_clean_error(run_train("--resume", str(exported), "--tokenizer", "bpe:300"), "--tokenizer")
    assert (exported / "model.safetensors").read_bytes() == before


@pytest.mark.slow
def test_readme_training_commands_run(tmp_path):
    """Every command of README's training section, shortened by options given after it (an option given
    last wins): the shown paths, presets and flags are the ones run."""
    import shlex
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Train a model")[1].split("\n## ")[0]
    lines = section.split("```bash\n")[1].split("```")[0].strip().splitlines()
    shorter = {"train_model.py": ["--steps", "3", "--eval-every", "2", "--eval-windows", "4"],
               "generate.py": ["--max-new-tokens", "5"], "bench_train.py": ["--pairs", "1"]}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for line in lines:
        words = shlex.split(line.split("#")[0])
        assert words[0] == ".venv/bin/python"
        script = os.path.basename(words[1])
        if script == "bench_train.py":
            pytest.importorskip("torch")
        extra = shorter[script] + (["--steps", "6"] if "--resume" in words else [])
        words = [sys.executable, str(ROOT / words[1])] + [
            w.replace("../shared/fixtures/", str(fixture_path("tinyshakespeare.txt").parent) + "/")
             .replace("runs/", str(tmp_path / "runs") + "/") for w in words[2:]] + extra
        res = subprocess.run(words, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert res.returncode == 0, (line, res.stderr[-2000:])
    assert (tmp_path / "runs" / "shakespeare" / "loss.png").is_file()
    assert json.loads((tmp_path / "runs" / "shakespeare" / "trainer_state.json").read_text())["step"] == 6


@pytest.mark.slow
def test_init_fine_tunes_smollm2_into_a_loadable_folder(tmp_path):
    """--init from the real SmolLM2 GGUF: its architecture and tokenizer carry over, the folder loads in
    generate.py's loader and HF `tokenizers` reads the tokenizer written from the GGUF identically."""
    tokenizers = pytest.importorskip("tokenizers")
    from conftest import smollm2_gguf_path
    gguf = smollm2_gguf_path()
    (tmp_path / "c.txt").write_text(TEXT * 3)
    res = run_train("--input", str(tmp_path / "c.txt"), "--out", str(tmp_path / "tuned"), "--init", str(gguf),
                    "--steps", "2", "--batch", "1", "--context", "32", "--eval-every", "1000", "--eval-windows", "2",
                    "--lr", "1e-5", "--min-lr", "1e-6", "--warmup", "0")
    assert res.returncode == 0, res.stderr
    base, tuned = load(str(gguf)), load(str(tmp_path / "tuned"))
    assert tuned.model.cfg.num_hidden_layers == 30 and tuned.model.cfg.tie_word_embeddings
    text = "Fine-tuning SmolLM2 on 🎉 Shakespeare's\nlines, 2024."
    assert tuned.tokenizer.encode(text) == base.tokenizer.encode(text)
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tuned" / "tokenizer.json"))
    hf.encode_special_tokens = True
    assert hf.encode(text, add_special_tokens=False).ids == base.tokenizer.encode(text)
    chat = [{"role": "user", "content": "Hi"}]
    assert tuned.chat.encode(tuned.tokenizer, chat) == base.chat.encode(base.tokenizer, chat)
    moved = max(float(np.abs(tuned.model.w[n] - base.model.w[n]).max()) for n in tuned.model.w)
    assert 0 < moved < 1e-2   # two small steps changed the weights, a little
    assert_clean_error(run_train("--input", str(tmp_path / "c.txt"), "--out", str(tmp_path / "x"), "--init", str(gguf),
                                 "--dim", "64"), "--init")


def test_schedule_surprises_are_said(tmp_path, corpus):
    """--steps within --warmup never decays; --resume with more --steps stretches the cosine (issue 26)."""
    res = run_train(*tiny_args(corpus, tmp_path / "w", "--steps", "3", "--warmup", "10"))
    assert res.returncode == 0 and "never decays" in res.stderr, res.stderr
    res = run_train(*tiny_args(corpus, tmp_path / "r", "--steps", "4", "--warmup", "1"))
    assert res.returncode == 0, res.stderr
    res = run_train("--resume", str(tmp_path / "r"), "--steps", "6")
    assert res.returncode == 0 and "cosine schedule now ends at step 6" in res.stderr, res.stderr
