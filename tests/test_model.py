"""The NumPy model against golden outputs of transformers.LlamaForCausalLM (no torch needed here)."""
import numpy as np
import pytest

from model.llama import Llama

from testkit.checkpoints import CONFIGS, greedy, write_checkpoint
from conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture(scope="module", params=list(CONFIGS))
def case(request, tmp_path_factory):
    folder = write_checkpoint(tmp_path_factory.mktemp(request.param), request.param)
    return Llama.load(folder), dict(np.load(GOLDEN / f"{request.param}.npz"))


@pytest.mark.parametrize("prompt", ["one", "fifty"])
def test_logits_match_transformers(case, prompt):
    model, gold = case
    ids = gold[f"{prompt}_ids"].tolist()
    model.new_cache(len(ids))
    logits = model.forward(ids, all_logits=True)           # [T, V]
    np.testing.assert_allclose(logits[-1], gold[f"{prompt}_last"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits[:, :64], gold[f"{prompt}_head"], atol=1e-4, rtol=0)
    assert np.abs(gold[f"{prompt}_last"]).max() > 1.0     # the reference is not trivially small


def test_cached_decode_equals_full_forward(case):
    model, gold = case
    ids = gold["fifty_ids"].tolist()
    model.new_cache(len(ids))
    stepwise = [model.forward(ids[:20])] + [model.forward([t]) for t in ids[20:]]
    model.new_cache(len(ids))
    full = model.forward(ids, all_logits=True)
    np.testing.assert_allclose(np.stack(stepwise), full[19:], atol=1e-4, rtol=0)


def test_greedy_generation_matches_transformers(case):
    model, gold = case
    assert greedy(model, gold["fifty_ids"].tolist()[:10], len(gold["greedy"])) == gold["greedy"].tolist()


@pytest.mark.parametrize("source", ["memory", "checkpoint"])
def test_small_o_proj_reads_on_into_zero_rows(tmp_path, source):
    """SmolLM2's attention width (o_proj 576 x 576) is below OpenBLAS's two-core size, so decode's o_proj
    call reads on into zero rows (model/speed.py o_pad_rows): the logits must not change."""
    from model.config import LlamaConfig
    from testkit.checkpoints import random_weights, save_safetensors
    raw = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=300, max_position_embeddings=64,
               rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu", hidden_size=576, intermediate_size=64,
               num_hidden_layers=2, num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True,
               attention_bias=True)
    weights = random_weights(raw, seed=3)
    for i in range(2):
        weights[f"model.layers.{i}.self_attn.o_proj.bias"] = np.linspace(-1, 1, 576, dtype=np.float32)
        for n in "qkv":
            weights[f"model.layers.{i}.self_attn.{n}_proj.bias"] = np.zeros(576 if n == "q" else 192, np.float32)
    given = {n: w.copy() for n, w in weights.items()}
    if source == "memory":
        model = Llama(LlamaConfig.from_dict(raw), weights)
    else:
        (tmp_path / "config.json").write_text(__import__("json").dumps(raw))
        save_safetensors(tmp_path / "model.safetensors", weights, "F32")
        model = Llama.load(tmp_path)
    o, o_wide = model.layers[0].o_proj, model.layers[0].o_padded
    assert o_wide.shape == (800, 576) and np.shares_memory(o, o_wide)    # 800 * 576 >= 460800: two cores
    assert not o_wide[576:].any()                                         # the rows read on are zeros
    for n, w in given.items():
        np.testing.assert_array_equal(model.w[n], w)                      # the HF names keep their values
    ids = [5, 17, 299, 0, 42, 42, 7, 100]
    model.new_cache(len(ids))
    full = model.forward(ids, all_logits=True)                            # T > 1: o_proj alone
    model.new_cache(len(ids))
    steps = np.stack([model.forward([t]) for t in ids])                   # T = 1: o_proj and the zero rows
    np.testing.assert_allclose(steps, full, atol=1e-4, rtol=1e-6)         # logits reach a few hundred
    h = np.random.default_rng(0).standard_normal((1, 576)).astype(np.float32)
    np.testing.assert_allclose((h @ o_wide.T)[0, :576], (h.astype(np.float64) @ given[
        "model.layers.0.self_attn.o_proj.weight"].T.astype(np.float64))[0], atol=1e-4)


@pytest.mark.parametrize("one_blas_thread", [True, False])
def test_row_ranges_in_threads_cover_the_rows_once_and_raise_errors(one_blas_thread):
    """model/speed.py data_parallel: the ranges tile 0..n in order, each row once, and a range's
    exception reaches the caller (it used to be printed by the thread and lost)."""
    from model.speed import data_parallel
    seen = np.zeros(11, int)

    def mark(a, b):
        seen[a:b] += 1
        return (a, b)
    ranges = data_parallel(mark, 11, one_blas_thread=one_blas_thread)
    assert seen.tolist() == [1] * 11
    assert ranges[0][0] == 0 and ranges[-1][1] == 11
    assert all(x[1] == y[0] for x, y in zip(ranges, ranges[1:]))

    def fail(a, b):
        if a > 0 or len(ranges) == 1:
            raise ValueError(f"range {a}..{b}")
    with pytest.raises(ValueError, match="range"):
        data_parallel(fail, 11, one_blas_thread=one_blas_thread)


def test_small_work_stays_in_the_callers_thread():
    """data_parallel with n * row_size under SMALL_WORK elements: one range 0..n, run in the calling thread
    (starting threads for a small log-softmax cost more than they saved); at SMALL_WORK, two ranges."""
    import threading
    from model.speed import SMALL_WORK, data_parallel
    where = []

    def mark(a, b):
        where.append(threading.current_thread() is threading.main_thread())
        return (a, b)
    assert data_parallel(mark, 8, one_blas_thread=False, row_size=SMALL_WORK // 8 - 1) == [(0, 8)]
    assert where == [True]
    assert data_parallel(mark, 8, one_blas_thread=False, row_size=SMALL_WORK // 8) == [(0, 4), (4, 8)]
