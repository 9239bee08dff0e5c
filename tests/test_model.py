"""The NumPy model against golden outputs of transformers.LlamaForCausalLM (no torch needed here)."""
import numpy as np
import pytest

from model.llama import Llama

from checkpoints import CONFIGS, greedy, write_checkpoint
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
