"""What the page shows, checked: merge replays end at encode's ids (both families, random text),
the logit lens's last layer is the real prediction, pushes add up to the logit, attention rows
recomputed from the residual stream equal the forward's, and the timeline replays generate.py."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bpe.files import load_tokenizer
from bpe.trace import boundaries, merge_trace, piece_bytes
from model.page_data import Request, analyze
from model.formats.loader import load
from model.lens import attention_rows, contributions, logit_lens, trace_sequence
from model.llama import Llama

from testkit.checkpoints import write_checkpoint
from conftest import fixture_path, smollm2_gguf_path

TEXT = st.lists(st.sampled_from(list("abcdefghijklmnop qrstuvwxyz  \n\téüß日本🎉0123456789<>|_.,'")
                                + ["<s>", "</s>", "<|im_start|>", "ing", "tion"]), max_size=30).map("".join)


@pytest.fixture(scope="module")
def tokenizers():
    return [load_tokenizer(fixture_path("llama2-tokenizer.model")), load_tokenizer(fixture_path("tok512.model")),
            load_tokenizer(fixture_path("llama2-tokenizer.json")), load_tokenizer(smollm2_gguf_path())]


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_merge_replays_end_at_encode(tokenizers, text):
    for tok in tokenizers:
        trace = merge_trace(tok, text)
        assert trace["ids"] == tok.encode(text), (tok.source, text)
        for chunk in trace["chunks"]:
            for step in chunk["steps"]:   # every merge joins the pair it names
                assert step["merged"] == step["pair"][0] + step["pair"][1]


def test_merge_replay_by_hand(tokenizers):
    tok = tokenizers[0]   # Llama-2: "▁t" is its first merge (score -1, the fixtures README's -(rank))
    trace = merge_trace(tok, "tokenizer")
    steps = trace["chunks"][0]["steps"]
    assert steps[0]["pair"] == ["▁", "t"] and steps[0]["value"] == -1.0
    for s in steps:   # the chosen pair beats every alternative shown, and is joined
        assert all(s["value"] >= a[2] for a in s["alternatives"])
    assert trace["chunks"][0]["pieces"] == tok.encode_pieces("tokenizer")
    smol = tokenizers[3]  # byte-level: lowest rank first
    for s in merge_trace(smol, " tokenizer")["chunks"][0]["steps"]:
        assert all(s["value"] <= a[2] for a in s["alternatives"])


def test_bytes_and_boundaries_spell_the_text(tokenizers):
    text = "naïve tokens 🎉 end"
    for tok in tokenizers[3:]:   # byte-level: the pieces' bytes are the text's bytes exactly
        ids = tok.encode(text)
        assert b"".join(piece_bytes(tok, i) for i in ids) == text.encode()
        assert boundaries(tok, ids)[-1] == len(text.encode())


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return Llama.load(write_checkpoint(tmp_path_factory.mktemp("lens") / "gqa", "gqa"))


def test_logit_lens_last_layer_is_the_prediction(model):
    ids = [1, 450, 7483, 310, 3444, 338, 17]
    tr = trace_sequence(model, ids)
    model.new_cache(16)
    logits = model.forward(ids, all_logits=True)                         # [T, V]
    for pos in (0, 3, len(ids) - 1):
        lens = logit_lens(model, tr, pos, k=5)
        assert len(lens) == model.cfg.num_hidden_layers + 1
        p = np.exp(logits[pos] - logits[pos].max())
        p /= p.sum()
        top = np.argsort(-p)[:5]
        assert [i for i, _ in lens[-1]] == top.tolist()
        np.testing.assert_allclose([q for _, q in lens[-1]], p[top], rtol=1e-4)
        push = contributions(model, tr, pos, int(top[0]))
        total = push["embedding"] + sum(push["attention"]) + sum(push["mlp"])
        assert abs(total - logits[pos, top[0]]) < 1e-3 and abs(push["logit"] - logits[pos, top[0]]) < 1e-4


def test_attention_rows_equal_the_forward(model):
    """Each query's rows, kept by the traced forward or recomputed (a long text keeps none), equal the rows a
    forward over the first q + 1 tokens computes with its KV cache; a layer's whole matrix equals its block run
    alone on that layer's input."""
    from model.lens import SequenceTrace, attention_matrix
    ids = [1, 450, 7483, 310, 3444, 338, 17, 42]
    tr = trace_sequence(model, ids)
    bare = SequenceTrace(tr.ids, tr.resid)                       # as a trace too long to keep its probs
    assert tr.probs is not None and len(tr.probs) == model.cfg.num_hidden_layers
    for q in range(len(ids)):
        trace = {}
        model.new_cache(16)
        model.forward(ids[:q + 1], trace=trace)
        np.testing.assert_allclose(attention_rows(model, tr, q), np.stack(trace["attention"]), atol=1e-6)
        np.testing.assert_allclose(attention_rows(model, bare, q), np.stack(trace["attention"]), atol=1e-6)
    for layer in range(model.cfg.num_hidden_layers):
        whole = attention_matrix(model, bare, layer)             # [H, T, T], the block alone
        np.testing.assert_allclose(attention_matrix(model, tr, layer), whole, atol=1e-6)
        assert np.allclose(np.triu(whole, 1), 0) and np.allclose(whole.sum(-1), 1, atol=1e-5)


def test_analysis_replays_generate_and_explains_each_step():
    loaded = load(str(smollm2_gguf_path()))
    ids = loaded.tokenizer.encode("Once upon a time")
    a = analyze(loaded, Request(ids, max_new_tokens=6, temperature=0.8, top_k=40, top_p=0.9, seed=3))
    from model.generate import generate
    again = list(generate(loaded.model, ids, max_new_tokens=6, rng=np.random.default_rng(3), temperature=0.8,
                          top_k=40, top_p=0.9, stop_ids=loaded.tokenizer.stop_ids, limit=loaded.sample_limit))
    assert a.new_ids == again
    for step, token in zip(a.steps, again):
        assert step["token"] == token and step["p_token"] > 0 and step["kept_top_k"] == 40
        ps = [c["p"] for c in step["candidates"]]
        assert ps == sorted(ps, reverse=True)
        assert all(not c["in_top_p"] or c["in_top_k"] for c in step["candidates"])
    summary = a.summary()
    assert [t["id"] for t in summary["tokens"]] == ids + again
