"""The learning tools: --inspect, embeddings.py, encode --color, train --verbose."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from bpe import SentencePieceTokenizer
from bpe.cli import render_tokens
from model.inspect_report import cosine_neighbours, inspect_run, load_embeddings, resolve_token, top_tokens, write_png
from model.attention import softmax
from model.llama import Llama

from testkit.checkpoints import write_checkpoint
from conftest import ROOT


@pytest.fixture(scope="module")
def folder(tmp_path_factory, llama_model_path):
    return write_checkpoint(tmp_path_factory.mktemp("inspect") / "gqa", "gqa", tokenizer=llama_model_path)


@pytest.fixture(scope="module")
def tok(llama_model_path):
    return SentencePieceTokenizer.load(llama_model_path)


def run_script(name, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True, env=env)


def png_size(path):
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_inspect_data_is_consistent(folder, tok):
    model = Llama.load(folder)
    ids = tok.encode("The cat sat on the mat", bos=True)
    lines = []
    result = inspect_run(model, tok, ids, steps=3, show_top=7, pick=lambda l: int(np.argmax(l)), out=lines.append)
    trace = result["trace"]
    cfg = model.cfg
    assert len(trace["attention"]) == cfg.num_hidden_layers and len(trace["norms"]) == cfg.num_hidden_layers + 1
    for weights in trace["attention"]:
        assert weights.shape == (cfg.num_attention_heads, len(ids))
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)   # attention rows sum to 1
    # the first table must be the model's own top-7 from a plain forward, with softmax probabilities
    model.new_cache(len(ids))
    logits = model.forward(ids)
    top, chosen = result["tables"][0]
    assert [i for i, _ in top] == list(np.argsort(-logits)[:7])
    np.testing.assert_allclose([p for _, p in top], softmax(logits.astype(np.float64))[[i for i, _ in top]], atol=1e-6)
    assert chosen == int(np.argmax(logits))
    assert softmax(logits.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)
    # the per-layer norms are the norms of the residual stream's last row
    assert trace["norms"][0] == pytest.approx(float(np.linalg.norm(model.embed_tokens[ids[-1]])), rel=1e-6)


def test_top_tokens_by_hand():
    logits = np.log(np.array([0.1, 0.6, 0.3]))
    assert [(i, round(p, 6)) for i, p in top_tokens(logits, 2)] == [(1, 0.6), (2, 0.3)]


def test_inspect_cli_text_and_png(folder, tmp_path):
    res = run_script("generate.py", "--model", str(folder), "--inspect", "--prompt", "Hello world",
                     "--temperature", "0", "--max-new-tokens", "2", "--layer", "1")
    assert res.returncode == 0, res.stderr
    assert "Step 2" in res.stdout and "layer 1" in res.stdout and "Hidden-state norm" in res.stdout
    png_dir = tmp_path / "maps"
    res = run_script("generate.py", "--model", str(folder), "--inspect", "--prompt", "Hello world",
                     "--temperature", "0", "--max-new-tokens", "1", "--png-dir", str(png_dir))
    assert res.returncode == 0, res.stderr
    files = sorted(png_dir.glob("*.png"))
    assert len(files) == 3  # one per layer
    width, height = png_size(files[0])
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # our own writer: cells of 400/positions pixels, 8 to 96 (here 96)
        assert (width, height) == (96 * 3, 96 * 16)  # "<s> ▁Hello ▁world": 3 positions; 16 heads
    else:
        assert width > 0 and height > 0


def test_plain_heatmap_is_large_enough_to_see(tmp_path):
    """Without matplotlib, nine heads over five positions were a 40 x 72 px image; now each cell is large."""
    import struct
    from model.inspect_report import png_heatmap
    png_heatmap(tmp_path / "a.png", np.random.default_rng(0).random((9, 5)), list("abcde"), [str(h) for h in range(9)], "t")
    w, h = struct.unpack(">II", (tmp_path / "a.png").read_bytes()[16:24])
    assert w >= 400 and h == 9 * (w // 5), (w, h)


def test_write_png_size(tmp_path):
    write_png(tmp_path / "a.png", np.random.default_rng(0).random((5, 9)), scale=4)
    assert png_size(tmp_path / "a.png") == (36, 20)


def test_inspect_errors(folder):
    for args, words in [(["--layer", "3"], "--layer 3"), (["--head", "16"], "--head 16"), (["--layer", "-1"], "--layer -1")]:
        res = run_script("generate.py", "--model", str(folder), "--inspect", "--prompt", "Hi", *args)
        assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1


def test_nearest_neighbours_match_brute_force(folder, tok):
    table = load_embeddings(folder)
    paris = resolve_token(tok, "Paris")
    assert tok.id_to_piece(paris) == "▁Paris"
    got = cosine_neighbours(table, table[paris], 5, exclude=[paris])
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    sims = unit @ unit[paris]
    sims[paris] = -np.inf
    assert [i for i, _ in got] == list(np.argsort(-sims)[:5])
    np.testing.assert_allclose([s for _, s in got], np.sort(sims)[::-1][:5], atol=1e-5)


def test_embeddings_cli(folder):
    res = run_script("embeddings.py", "--model", str(folder), "--expr", "Paris - France + Italy", "--top", "3")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("nearest to ▁Paris - ▁France + ▁Italy") and len(res.stdout.splitlines()) == 4
    bad = run_script("embeddings.py", "--model", str(folder), "--token", "Zzxqwv")
    assert bad.returncode == 2 and "not in the vocabulary" in bad.stderr and "Traceback" not in bad.stderr


def test_color_rendering(tok):
    ids = tok.encode("Hello  world 😀")
    plain = render_tokens(tok, ids, color=False)
    assert plain == " Hello| | world| |😀"  # the emoji's four byte pieces shown as one character
    colored = render_tokens(tok, ids, color=True)
    assert colored.count("\x1b[0m") == 5 and "\x1b[30;48;5;153m Hello" in colored   # black on light blue (issue 17)
    assert render_tokens(tok, ids, color=False, show_ids=True).split("|")[0] == "15043"


def test_encode_color_falls_back_when_not_a_terminal(llama_model_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "bpe", "encode", "--model", str(llama_model_path), "--color"],
                         input="Hello  world\n", capture_output=True, text=True, env=env)
    assert res.stdout == " Hello| | world\n"


def test_train_verbose_prints_the_table_each_step(tmp_path):
    res = run_script("train_bpe.py", "--input", str(ROOT / "scripts" / "data" / "toy_corpus.txt"),
                     "--vocab-size", "310", "--model-prefix", str(tmp_path / "toy"), "--verbose")
    assert res.returncode == 0, res.stderr
    merges = [line for line in res.stdout.splitlines() if line.startswith("merge")]
    assert len(merges) == res.stdout.count("pair                  count") > 0
    # the first table's top row is the first merge (count and pair agree)
    first_table = res.stdout.split("merge")[0].splitlines()
    assert "'▁' + 't'" in first_table[2] and merges[0].endswith(first_table[2].split()[-1] + ")")
