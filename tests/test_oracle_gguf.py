"""Live oracle for GGUF files (CI runs it with `pytest -m oracle`): transformers loading the same
files with `gguf_file=`, on CPU; and the committed GGUF goldens are still what transformers computes."""
import json

import numpy as np
import pytest

from model.formats.loader import load

from testkit.checkpoints import greedy
from conftest import ROOT, smollm2_gguf_path

pytestmark = pytest.mark.oracle
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture(scope="module", autouse=True)
def oracle_installed():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")


@pytest.fixture(scope="module", params=["q4km-sp", "legacy-sp", "mixed-bpe-tied"])
def live(request, tmp_path_factory):
    from testkit.gguf_checkpoints import write_gguf
    from make_golden import reference_gguf
    path = write_gguf(tmp_path_factory.mktemp(request.param), request.param)
    return request.param, load(str(path)), reference_gguf(path)


def test_gguf_against_live_transformers(live):
    name, loaded, ref = live
    model, ids = loaded.model, ref["fifty_ids"].tolist()
    model.new_cache(len(ids))
    logits = model.forward(ids, all_logits=True)
    np.testing.assert_allclose(logits[-1], ref["fifty_last"], atol=1e-4, rtol=0)
    assert greedy(model, ids[:10], len(ref["greedy"])) == ref["greedy"].tolist()


def test_gguf_goldens_are_current(live):
    name, _, ref = live
    gold = np.load(GOLDEN / f"gguf-{name}.npz")
    for key, value in ref.items():
        if np.issubdtype(value.dtype, np.integer):
            np.testing.assert_array_equal(gold[key], value, err_msg=f"{name}: {key}; rerun tests/make_golden.py")
        else:
            np.testing.assert_allclose(gold[key], value, atol=1e-4, rtol=0, err_msg=f"{name}: {key}")


def test_smollm2_against_live_transformers():
    from make_golden import reference_smollm2
    path = smollm2_gguf_path()
    ref = reference_smollm2(path)
    assert ref == json.loads((GOLDEN / "smollm2.json").read_text()), "rerun tests/make_golden.py"
    loaded = load(str(path))
    for case in ref["cases"]:
        assert greedy(loaded.model, case["ids"], len(case["greedy"])) == case["greedy"]
