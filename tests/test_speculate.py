"""Speculative decoding: greedy text identical to plain decoding (random models and SmolLM2, lookup and
a draft model), the sampling rule keeps the target's distribution (chi-square against plain sampling),
stats that add up, and bad options refused."""
import os
import subprocess
import sys

import numpy as np
import pytest

from model.config import LlamaConfig
from model.formats.loader import load
from model.generate import Stats, generate
from model.llama import Llama
from model.session import stop_ids
from model.speculate import LookupDrafter, verify
from model.train.recipe import init_weights

from testkit.checkpoints import write_checkpoint
from conftest import ROOT, assert_clean_error, smollm2_gguf_path


def tiny(vocab=12, seed=0, scale=25.0):
    """A small random model whose next-token distributions are far from uniform."""
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8, vocab_size=vocab, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
    w = init_weights(cfg, np.random.default_rng(seed))
    w = {n: a * np.float32(scale) if a.ndim == 2 else a for n, a in w.items()}
    return Llama(cfg, w)


def run(model, prompt, n, drafter=None, k=4, seed=0, **sampling):
    stats = Stats()
    out = list(generate(model, prompt, max_new_tokens=n, rng=np.random.default_rng(seed), stats=stats,
                        drafter=drafter, draft_tokens=k, **sampling))
    return out, stats


@pytest.mark.parametrize("seed", range(4))
def test_greedy_lookup_is_plain_decoding_on_random_models(tmp_path, seed):
    model = Llama.load(write_checkpoint(tmp_path / "m", ["gqa", "mha", "tied", "qwen2"][seed]))
    prompt = [1] + [5, 6, 7, 8, 9] * 4 + [5, 6]
    plain, _ = run(model, prompt, 40, temperature=0)
    for k in (1, 3, 8):
        fast, stats = run(model, prompt, 40, LookupDrafter(), k=k, temperature=0)
        assert fast == plain
        c = stats.speculation
        assert c.accepted <= c.drafted and stats.generated_tokens == len(plain)
        assert c.passes + c.plain + 1 <= len(plain) + 1


def test_greedy_with_a_draft_model_is_plain_decoding(tmp_path):
    target = Llama.load(write_checkpoint(tmp_path / "t", "gqa"))
    draft = Llama.load(write_checkpoint(tmp_path / "d", "mha"))   # another model, same vocabulary
    prompt = [1, 450, 7483, 310, 3444, 338]
    plain, _ = run(target, prompt, 30, temperature=0)
    fast, stats = run(target, prompt, 30, draft, k=4, temperature=0)
    assert fast == plain and stats.speculation.drafted > 0


def test_drafts_past_a_stop_token_are_not_counted(tmp_path):
    """The model as its own draft agrees with every draft, so accepted = drafted, and only drafts that
    were output count: at most one per generated token after the first, the stop token included."""
    target = Llama.load(write_checkpoint(tmp_path / "t", "gqa"))
    same = Llama.load(write_checkpoint(tmp_path / "d", "gqa"))
    prompt = [1, 450, 7483, 310, 3444, 338]
    plain, _ = run(target, prompt, 30, temperature=0)
    stop = plain[12]
    expected = plain[:plain.index(stop) + 1]
    fast, stats = run(target, prompt, 30, same, k=8, temperature=0, stop_ids={stop})
    c = stats.speculation
    assert fast == expected and c.passes > 0
    assert c.accepted == c.drafted <= len(fast) - 1


def test_smollm2_repeat_prompt_lookup_and_draft_model():
    loaded = load(str(smollm2_gguf_path()))
    tok, model = loaded.tokenizer, loaded.model
    para = ("The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a small lamp "
            "and a notebook in which he wrote down the ships he saw.")
    ids = loaded.chat.encode(tok, [{"role": "user", "content": "Repeat this text exactly:\n\n" + para}])
    common = dict(temperature=0, stop_ids=stop_ids(model, tok), limit=loaded.sample_limit)
    plain, _ = run(model, ids, 48, **common)
    fast, stats = run(model, ids, 48, LookupDrafter(), k=8, **common)
    assert fast == plain
    assert stats.speculation.accepted > len(plain) // 2            # most of a repeat is drafted right
    draft = load(str(smollm2_gguf_path())).model
    assert run(model, ids, 24, draft, k=4, **common)[0] == plain[:24]


def test_accept_reject_rule_keeps_the_target_distribution():
    """One checking step by itself: draws after verify() have the target's distribution p, whatever
    the draft (a deterministic lookup draft, or a draft distribution q)."""
    from scipy_free_chi2 import chi2_sf
    rng = np.random.default_rng(0)
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0, 1.5], np.float32)
    settings = dict(temperature=1.0, top_k=0, top_p=1.0)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    q = np.array([0.05, 0.6, 0.1, 0.1, 0.1, 0.05])
    for draft, qs in ((1, None), (4, None), (None, [q])):
        n = 20000
        counts = np.zeros(6)
        for _ in range(n):
            d = draft if draft is not None else int(rng.choice(6, p=q))   # a draft model's draft is drawn from q
            tokens, _ = verify(logits[None].repeat(2, 0), [d], qs, settings, rng, 6)
            counts[tokens[0]] += 1
        stat = ((counts - n * p) ** 2 / (n * p)).sum()
        assert chi2_sf(stat, 5) > 1e-4, (draft, counts / n, p)


def test_sampled_text_has_plain_samplings_distribution():
    """End to end: the first three tokens after a repetitive prompt, drawn 1500 times with lookup drafts
    and 1500 times plainly, pass a chi-square test of one distribution."""
    from scipy_free_chi2 import chi2_sf
    model = tiny()
    prompt = [1, 2, 3, 1, 2, 3, 1, 2]
    settings = dict(temperature=1.0, top_k=0, top_p=1.0)
    joint = {}
    for kind, drafter in (("plain", None), ("lookup", LookupDrafter())):
        seen = {}
        for seed in range(1500):
            out, _ = run(model, prompt, 3, drafter, k=3, seed=seed, **settings)
            key = tuple(out[:2])
            seen[key] = seen.get(key, 0) + 1
        joint[kind] = seen
    keys = sorted(set(joint["plain"]) | set(joint["lookup"]))
    a = np.array([joint["plain"].get(k, 0) for k in keys], float)
    b = np.array([joint["lookup"].get(k, 0) for k in keys], float)
    keep = (a + b) >= 10                                   # pool rare outcomes into one cell
    a = np.append(a[keep], a[~keep].sum())
    b = np.append(b[keep], b[~keep].sum())
    expected_a = (a + b) * a.sum() / (a.sum() + b.sum())
    expected_b = (a + b) * b.sum() / (a.sum() + b.sum())
    ok = (expected_a > 0)
    stat = (((a - expected_a) ** 2 / expected_a)[ok] + ((b - expected_b) ** 2 / expected_b)[ok]).sum()
    assert chi2_sf(stat, int(ok.sum()) - 1) > 1e-4, stat


def run_generate(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), *args], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_bad_options_are_refused(tmp_path):
    gguf = str(smollm2_gguf_path())
    assert_clean_error(run_generate("--model", gguf, "--prompt", "x", "--speculate", "lookup", "--draft-tokens", "0"),
                       "--draft-tokens")
    assert_clean_error(run_generate("--model", gguf, "--prompt", "x", "--speculate", "lookup", "--draft-tokens", "999"),
                       "--draft-tokens")
    assert_clean_error(run_generate("--model", gguf, "--prompt", "x", "--draft-tokens", "4"), "--speculate")
    assert_clean_error(run_generate("--model", gguf, "--prompt", "x", "--speculate", "nonsense"), "--speculate nonsense")
    from conftest import fixture_path
    other = write_checkpoint(tmp_path / "other", "gqa", tokenizer=fixture_path("llama2-tokenizer.model"))
    res = run_generate("--model", gguf, "--prompt", "x", "--speculate", str(other))
    assert_clean_error(res, "--speculate", "ids")
    ok = run_generate("--model", gguf, "--prompt", "Hello Hello Hello", "--speculate", "lookup", "--temperature", "0",
                      "--max-new-tokens", "6")
    assert ok.returncode == 0 and "speculate   =" in ok.stderr and "counted in generated tokens" not in ok.stderr
    eval_line = next(line for line in ok.stderr.splitlines() if line.startswith("eval time"))
    generated = int(ok.stderr.split("generated   =")[1].split()[0])
    assert f"/ {generated - 1:5d} tokens" in eval_line and " runs   (" not in eval_line, eval_line


def test_inspect_and_the_page_mark_how_each_token_came():
    gguf = str(smollm2_gguf_path())
    prompt = "Repeat exactly: the red fox runs over the green hill and the red fox sleeps."
    common = ("--model", gguf, "--inspect", "--chat", "--temperature", "0", "--prompt", prompt, "--max-new-tokens", "14")
    plain, fast = run_generate(*common), run_generate(*common, "--speculate", "lookup")
    assert plain.returncode == fast.returncode == 0, fast.stderr
    chosen = lambda out: [line for line in out.splitlines() if "<- chosen" in line]  # noqa: E731
    assert chosen(plain.stdout) == chosen(fast.stdout)             # the same tokens, the same tables
    assert "(drafted, accepted)" in fast.stdout and "speculate   =" in fast.stdout
    from starlette.testclient import TestClient
    from model.web.server import create_app
    loaded = load(gguf)
    c = TestClient(create_app(loaded, hosts={"testserver"}))
    a = c.post("/api/analyze", json={"text": prompt, "chat": True, "max_new_tokens": 14, "speculate": True}).json()
    b = c.post("/api/analyze", json={"text": prompt, "chat": True, "max_new_tokens": 14}).json()
    assert [s["token"] for s in a["timeline"]] == [s["token"] for s in b["timeline"]]
    hows = {s["how"] for s in a["timeline"]}
    assert "drafted, accepted" in hows and a["speculation"]["accepted"] > 0 and b["speculation"] is None


def test_readme_speculate_commands_run():
    """README's --speculate commands, as shown (with fewer new tokens appended: the last option wins)."""
    import shlex
    lines = [l for l in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
             if l.startswith(".venv/bin/python scripts/generate.py") and "--speculate" in l]
    assert len(lines) >= 2
    for line in lines:
        words = shlex.split(line.split("  #")[0])
        res = run_generate(*words[2:], "--max-new-tokens", "8")
        assert res.returncode == 0 and "speculate" in (res.stderr + res.stdout), (line, res.stderr)
