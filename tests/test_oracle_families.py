"""Live oracle (CI: `pytest -m oracle`) for the 2025 small models on the one block: random Qwen3 and
Gemma 3 checkpoints made and saved by transformers (its own config.json, either config form), our
logits, greedy text and gradients against transformers' forward and PyTorch autograd."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from model.config import LlamaConfig
from model.llama import Llama

from conftest import ROOT, smollm2_tokenizer_json

pytestmark = pytest.mark.oracle
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 97
CASES = {
    # Qwen3: q/k norms, explicit head_dim (H*E != D), GQA, untied
    "qwen3": ("qwen3", dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=16, tie_word_embeddings=False, rope_theta=5000.0)),
    # Gemma 3, transformers 5's form: layer_types + rope_parameters; a window shorter than the text;
    # query_pre_attn_scalar not head_dim; tied
    "gemma3-v5": ("gemma3_text", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                                      num_key_value_heads=1, head_dim=24, query_pre_attn_scalar=20, sliding_window=5,
                                      layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                   "sliding_attention"],
                                      rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                                       "sliding_attention": {"rope_type": "default",
                                                                             "rope_theta": 1e4}},
                                      tie_word_embeddings=True)),
    # Gemma 3, untied, 2 KV heads, another window and bases, a pattern of 3
    "gemma3-untied": ("gemma3_text", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                          num_attention_heads=2, num_key_value_heads=2, head_dim=16,
                                          query_pre_attn_scalar=64, sliding_window=3,
                                          layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                          rope_parameters={"full_attention": {"rope_type": "default",
                                                                              "rope_theta": 5e5},
                                                           "sliding_attention": {"rope_type": "default",
                                                                                 "rope_theta": 3e3}},
                                          tie_word_embeddings=False)),
}


def torch_model(name: str, dtype=torch.float32, vocab: int = VOCAB):
    """A randomly initialised transformers model of a named case, norms far from their defaults."""
    model_type, fields = CASES[name]
    common = dict(vocab_size=vocab, max_position_embeddings=128, rms_norm_eps=1e-6, attn_implementation="eager")
    if model_type == "qwen3":
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**fields, **common))
    else:
        model = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**fields, **common))
    torch.manual_seed(len(name))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(torch.randn_like(p) * 0.5 + (0.0 if model_type == "gemma3_text" else 1.0))
            else:
                p.copy_(torch.randn_like(p) * 0.2)
    return model.to(dtype).eval()


@pytest.fixture(scope="module", params=list(CASES))
def saved(request, tmp_path_factory):
    """(name, transformers model, its saved folder)."""
    model = torch_model(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, model, folder


def test_logits_of_a_saved_checkpoint_equal_transformers(saved):
    name, model, folder = saved
    ours = Llama.load(folder)
    ids = np.random.default_rng(3).integers(0, VOCAB, 23)
    with torch.no_grad():
        ref = model(torch.tensor(ids[None])).logits[0].numpy()
    ours.new_cache(32)
    full = ours.forward(ids, all_logits=True)
    np.testing.assert_allclose(full, ref, atol=2e-4 * np.abs(ref).max(), rtol=0)
    ours.new_cache(32)                                             # prefill, then decode one token at a time
    ours.forward(ids[:7])
    steps = np.stack([ours.forward(ids[t:t + 1]) for t in range(7, len(ids))])
    np.testing.assert_allclose(steps, ref[7:], atol=2e-4 * np.abs(ref).max(), rtol=0)


def test_greedy_text_through_generate_py_equals_transformers(tmp_path):
    """A Gemma 3 folder with a real tokenizer (SmolLM2's vocabulary): generate.py's greedy text equals
    transformers' greedy continuation, decoded by the same tokenizer."""
    tokenizers = pytest.importorskip("tokenizers")
    model = torch_model("gemma3-v5", vocab=49152)
    model.save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes(smollm2_tokenizer_json().read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": False}))
    tok = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    prompt = "A lighthouse keeper counted ships"
    ids = tok.encode(prompt).ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                             pad_token_id=0)[0, len(ids):].tolist()
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", str(tmp_path),
                          "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "12"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.rstrip("\n") == prompt + tok.decode(out)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_gradients_equal_autograd(name, dtype, tol, tmp_path):
    from model.train import loss_and_grads
    model = torch_model(name, dtype)
    model.config.save_pretrained(tmp_path)
    cfg = LlamaConfig.load(tmp_path / "config.json")
    rng = np.random.default_rng(1)
    inputs, targets = rng.integers(0, VOCAB, (3, 13)), rng.integers(0, VOCAB, (3, 13))
    inputs[0, :5] = 7                                              # repeated ids
    model.zero_grad()
    logits = model(torch.tensor(inputs)).logits
    ref_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), torch.tensor(targets).reshape(-1))
    ref_loss.backward()
    ref = {n: p.grad.numpy() for n, p in model.named_parameters()}
    weights = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    loss, grads = loss_and_grads(cfg, weights, inputs, targets)
    ref_loss = float(ref_loss.detach())
    assert abs(loss - ref_loss) <= tol * abs(ref_loss)
    assert set(grads) == set(ref)
    for n in ref:
        err = np.abs(grads[n] - ref[n]).max() / np.abs(ref[n]).max()
        assert err <= tol, (n, err)


@pytest.fixture(scope="module")
def gemma3_transformers():
    """transformers loading the real Gemma 3 270M GGUF in float32 (its own dequantizer and converter)."""
    from conftest import gemma3_gguf_path
    path = gemma3_gguf_path()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                              dtype=torch.float32).eval()
    return path, model


@pytest.mark.parametrize("prompt", ["The three primary colors are", "def fibonacci(n):\n    ",
                                    "Paris est la capitale de"])
def test_gemma3_gguf_logits_and_greedy_equal_transformers(gemma3_transformers, prompt):
    from model.formats.loader import load
    path, ref_model = gemma3_transformers
    ours = load(str(path))
    ids = ours.tokenizer.encode(prompt, bos=True)
    with torch.no_grad():
        ref = ref_model(torch.tensor([ids])).logits[0].numpy()
        greedy = ref_model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)[0, len(ids):].tolist()
    ours.model.new_cache(64)
    logits = ours.model.forward(ids, all_logits=True)
    np.testing.assert_allclose(logits, ref, atol=2e-3 * np.abs(ref).max(), rtol=0)
    stop = ours.tokenizer.stop_ids
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", "gemma3", "--prompt",
                          prompt, "--temperature", "0", "--max-new-tokens", "16", "--quiet"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    want = greedy[:next((k for k, t in enumerate(greedy) if t in stop), len(greedy))]
    assert res.stdout.rstrip("\n") == prompt + ours.tokenizer.decode(want)


def test_a_small_gemma3_gguf_equals_transformers(tmp_path):
    """A random Gemma 3 GGUF laid out as llama.cpp's converter does (norms as 1 + w, a window shorter than
    the text), head size 256 so that transformers' default query_pre_attn_scalar is llama.cpp's."""
    from model.formats.loader import load
    from testkit.gguf_checkpoints import write_gemma3_gguf
    path = write_gemma3_gguf(tmp_path / "g.gguf", head_dim=256, window=4, layers=6, seed=5)
    ref_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="g.gguf",
                                                                  dtype=torch.float32).eval()
    ours = load(str(path))
    ids = [1] + list(range(300, 318))
    with torch.no_grad():
        ref = ref_model(torch.tensor([ids])).logits[0].numpy()
    ours.model.new_cache(32)
    np.testing.assert_allclose(ours.model.forward(ids, all_logits=True), ref, atol=1e-4 * np.abs(ref).max(), rtol=0)
