"""Sampling, the chat format, loading variants, and scripts/generate.py end to end (no torch)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from model.chat import encode_chat, render_chat
from model.config import ConfigError, LlamaConfig
from model.llama import Llama
from model.sampling import probabilities, sample, top_k_candidates, top_p_filter
from model.weights import load_tensors, read_header

from testkit.checkpoints import config_dict, write_checkpoint
from conftest import ROOT, assert_clean_error

spm = pytest.importorskip("sentencepiece")


# --- sampling ---------------------------------------------------------------------------------
def test_greedy_and_seeded_sampling():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(1000).astype(np.float32)
    assert sample(logits, rng, temperature=0) == int(np.argmax(logits))
    draws = [sample(logits, np.random.default_rng(7), temperature=0.8, top_k=40, top_p=0.9) for _ in range(3)]
    assert len(set(draws)) == 1  # the same seed gives the same token


def test_top_k_matches_brute_force():
    logits = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    assert set(top_k_candidates(logits, 17)) == set(np.argsort(-logits)[:17])


def test_top_p_is_the_smallest_nucleus():
    probs = probabilities(np.random.default_rng(2).standard_normal(3000), 0.5)
    order = np.argsort(-probs)
    for p in [0.1, 0.5, 0.9, 0.99]:
        n = int(np.searchsorted(np.cumsum(probs[order]), p)) + 1  # brute force over the full sort
        assert set(top_p_filter(probs, p)) == set(order[:n])
    assert probabilities(np.array([1.0, 2.0, 3.0]), 1.0).sum() == pytest.approx(1.0, abs=1e-12)


def test_sampling_only_draws_inside_top_k():
    logits = np.arange(100, dtype=np.float32)
    rng = np.random.default_rng(3)
    assert {sample(logits, rng, temperature=5.0, top_k=3) for _ in range(200)} <= {97, 98, 99}


# --- chat format ------------------------------------------------------------------------------
SYSTEM = "You are a friendly chatbot who always responds in the style of a pirate."
USER = "How many helicopters can a human eat in one sitting?"


def test_chat_rendering_matches_the_template():
    # the fixtures README's rendering of TinyLlama-Chat's chat_template
    expected = (f"<|system|>\n{SYSTEM}</s>\n<|user|>\n{USER}</s>\n<|assistant|>\n")
    assert render_chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]) == expected


def test_chat_ids_use_eos_id_not_text(llama_model_path):
    from bpe import SentencePieceTokenizer
    tok = SentencePieceTokenizer.load(llama_model_path)
    sp = spm.SentencePieceProcessor(model_file=str(llama_model_path))
    ids = encode_chat(tok, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}])
    # BOS, each stretch of text encoded alone (as HF's tokenizer does), </s> as id 2
    expected = ([1] + sp.encode(f"<|system|>\n{SYSTEM}") + [2] + sp.encode(f"\n<|user|>\n{USER}") + [2]
                + sp.encode("\n<|assistant|>\n"))
    assert ids == expected
    assert ids.count(2) == 2 and 29871 in ids  # "\n" after </s> starts with the dummy-prefix piece


# --- loading ----------------------------------------------------------------------------------
def test_sharded_f16_f32_load_like_bf16(tmp_path):
    base = Llama.load(write_checkpoint(tmp_path / "bf16", "gqa"))
    sharded = Llama.load(write_checkpoint(tmp_path / "sharded", "gqa", shards=3))
    for name, w in base.w.items():
        np.testing.assert_array_equal(w, sharded.w[name])
    for dtype in ["F16", "F32"]:
        other = Llama.load(write_checkpoint(tmp_path / dtype, "gqa", dtype=dtype))
        for name, w in base.w.items():  # bf16 keeps 8 bits of mantissa: relative error below 2^-8
            np.testing.assert_allclose(w, other.w[name], rtol=2 ** -8, atol=1e-6)


def test_bf16_decoding_by_hand(tmp_path):
    from model.weights import save_safetensors
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)  # exactly representable in bf16
    save_safetensors(tmp_path / "t.safetensors", {"x": values})
    header, start = read_header(tmp_path / "t.safetensors")
    assert header["x"]["dtype"] == "BF16" and header["x"]["data_offsets"] == [0, 8]
    raw = (tmp_path / "t.safetensors").read_bytes()[start:]
    assert raw[:2] == bytes([0x80, 0x3F])  # 1.0 is 0x3F80 in bf16, little-endian
    np.testing.assert_array_equal(load_tensors(tmp_path / "t.safetensors")["x"], values)


def test_config_rejections():
    good = config_dict("gqa")
    LlamaConfig.from_dict(good)
    for change, words in [({"rope_scaling": {"type": "yarn", "factor": 2.0}}, "yarn"),
                          ({"mlp_bias": True}, "mlp_bias"), ({"hidden_act": "gelu"}, "gelu"),
                          ({"model_type": "gemma"}, "gemma"), ({"num_key_value_heads": 3}, "multiple"),
                          ({"rope_theta": None}, "rope_theta"), ({"rope_theta": "abc"}, "rope_theta"),
                          ({"rope_theta": -1.0}, "rope_theta"), ({"rms_norm_eps": -1e-5}, "rms_norm_eps"),
                          ({"rope_scaling": "yes"}, "rope_scaling"), ({"eos_token_id": "x"}, "eos_token_id"),
                          ({"max_position_embeddings": 1e10}, "max_position_embeddings"),
                          ({"max_position_embeddings": 10**12}, "max_position_embeddings"),
                          ({"tie_word_embeddings": "false"}, "tie_word_embeddings"),
                          ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "low_freq_factor"),
                          ({"model_type": "mistral", "sliding_window": -3}, "sliding_window")]:
        with pytest.raises(ConfigError, match=words):
            LlamaConfig.from_dict({**good, **change})
    with pytest.raises(ConfigError, match="hidden_size"):
        LlamaConfig.from_dict({k: v for k, v in good.items() if k != "hidden_size"})
    assert LlamaConfig.from_dict({**good, "eos_token_id": []}).eos_token_id is None
    assert LlamaConfig.from_dict({**good, "eos_token_id": [7, 9]}).eos_token_id == 7


def test_config_family_fields():
    good = config_dict("gqa")
    qwen = LlamaConfig.from_dict({**good, "model_type": "qwen2", "use_sliding_window": False, "sliding_window": 64})
    assert qwen.qkv_bias and not qwen.o_bias and qwen.windows == ()
    mistral = LlamaConfig.from_dict({**good, "model_type": "mistral", "sliding_window": 16})
    assert mistral.window(0) == 16 and len(mistral.windows) == good["num_hidden_layers"]
    llama3 = LlamaConfig.from_dict({**good, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                             "high_freq_factor": 4.0,
                                                             "original_max_position_embeddings": 64}})
    assert llama3.rope_scaling["factor"] == 8.0
    v5 = LlamaConfig.from_dict({**good, "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 5e5}})
    assert v5.rope_theta == 5e5 and v5.rope_scaling == {"rope_type": "linear", "factor": 2.0}


# --- scripts/generate.py ------------------------------------------------------------------------
def run_generate(*args, stdin=""):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")  # tests never download
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), *args],
                          input=stdin, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, llama_model_path):
    return write_checkpoint(tmp_path_factory.mktemp("gen") / "gqa", "gqa", tokenizer=llama_model_path)


def test_generate_greedy_matches_the_library(folder, llama_model_path):
    from bpe import SentencePieceTokenizer
    res = run_generate("--model", str(folder), "--prompt", "Once upon a time", "--max-new-tokens", "12", "--temperature", "0")
    assert res.returncode == 0, res.stderr
    tok = SentencePieceTokenizer.load(llama_model_path)
    model = Llama.load(folder)
    ids = tok.encode("Once upon a time", bos=True)
    model.new_cache(64)
    logits, new = model.forward(ids), []
    for _ in range(12):
        new.append(int(np.argmax(logits)))
        if new[-1] == 2:
            break
        logits = model.forward([new[-1]])
    expected = tok.decode(ids + [t for t in new if t != 2])
    assert res.stdout == expected + "\n"          # stdout: the text only, prompt echoed first
    assert "prompt eval" in res.stderr and "eval time" in res.stderr and "load time" in res.stderr


def test_stdin_prompt_loses_its_final_newline_only(folder):
    # issue 17: `echo PROMPT |` must answer as --prompt PROMPT does; the trailing "\n" is not the user's
    greedy = ("--model", str(folder), "--max-new-tokens", "8", "--temperature", "0")
    given = run_generate(*greedy, "--prompt", "Once upon a time")
    for text in ("Once upon a time\n", "Once upon a time\r\n"):
        piped = run_generate(*greedy, stdin=text)
        assert piped.returncode == 0 and piped.stdout == given.stdout, (text, piped.stderr)
    two = run_generate(*greedy, stdin="Once upon a time\n\n")   # only one newline goes
    assert two.stdout == run_generate(*greedy, "--prompt", "Once upon a time\n").stdout
    assert two.stdout != given.stdout


def test_generate_same_seed_same_text(folder):
    a = run_generate("--model", str(folder), "--prompt", "Hi", "--max-new-tokens", "15", "--seed", "5")
    b = run_generate("--model", str(folder), "--prompt", "Hi", "--max-new-tokens", "15", "--seed", "5")
    assert a.returncode == 0 and a.stdout == b.stdout


def test_unreachable_repo_says_what_to_do():
    res = run_generate("--model", "tinyllama-from-scratch-tests/no-such-model", "--prompt", "x")
    assert_clean_error(res, "https://huggingface.co/tinyllama-from-scratch-tests/no-such-model", "--model FOLDER")


def test_generate_bad_input(folder, tmp_path):
    assert_clean_error(run_generate("--model", str(tmp_path / "none"), "--prompt", "x"), "none")
    assert_clean_error(run_generate("--model", str(folder), "--prompt", "x", "--temperature", "-1"), "temperature")
    assert_clean_error(run_generate("--model", str(folder), "--prompt", "x", "--top-p", "0"), "top-p")
    assert_clean_error(run_generate("--model", str(folder), "--prompt", "x", "--top-k", "-3"), "top-k")
    assert_clean_error(run_generate("--model", str(folder), "--prompt", "x", "--max-new-tokens", "-1"), "max-new-tokens")
    too_long = run_generate("--model", str(folder), "--prompt", "hello " * 300)
    assert_clean_error(too_long, "context")
    assert too_long.stdout == ""  # nothing echoed before the error


def broken_copy(folder, tmp_path, name):
    """A copy of the checkpoint folder to break in one way."""
    out = tmp_path / name
    out.mkdir()
    for f in folder.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    return out


def test_generate_bad_checkpoints(folder, tmp_path):
    no_field = broken_copy(folder, tmp_path, "nofield")
    cfg = json.loads((no_field / "config.json").read_text())
    del cfg["intermediate_size"]
    (no_field / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(run_generate("--model", str(no_field), "--prompt", "x"), "intermediate_size")

    scaled = broken_copy(folder, tmp_path, "scaled")
    (scaled / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 200, "rope_scaling": {"type": "dynamic"}}))
    assert_clean_error(run_generate("--model", str(scaled), "--prompt", "x"), "rope_scaling")

    truncated = broken_copy(folder, tmp_path, "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert_clean_error(run_generate("--model", str(truncated), "--prompt", "x"), "model.safetensors")

    corrupt = broken_copy(folder, tmp_path, "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\xff" * 64)
    assert_clean_error(run_generate("--model", str(corrupt), "--prompt", "x"), "corrupted")

    wrong = broken_copy(folder, tmp_path, "wrongshape")
    (wrong / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 201}))
    assert_clean_error(run_generate("--model", str(wrong), "--prompt", "x"), "shape", "mlp")

    dtype = broken_copy(folder, tmp_path, "dtype")
    raw = (dtype / "model.safetensors").read_bytes()
    (dtype / "model.safetensors").write_bytes(raw.replace(b'"BF16"', b'"I16" ', 1))
    assert_clean_error(run_generate("--model", str(dtype), "--prompt", "x"), "I16")

    no_weights = broken_copy(folder, tmp_path, "noweights")
    (no_weights / "model.safetensors").unlink()
    assert_clean_error(run_generate("--model", str(no_weights), "--prompt", "x"), "model.safetensors")


def test_rope_settings_in_either_form():
    good = config_dict("gqa")
    assert LlamaConfig.from_dict({**good, "rope_scaling": {"rope_type": "default"}}).rope_theta == 10000.0
    v5 = {k: v for k, v in good.items() if k != "rope_theta"}
    assert LlamaConfig.from_dict({**v5, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}}).rope_theta == 5e5
    with pytest.raises(ConfigError, match="rope_scaling"):
        LlamaConfig.from_dict({**v5, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}})


def test_ctrl_c_stops_cleanly(folder, tmp_path):
    import signal
    import time
    long = broken_copy(folder, tmp_path, "long")  # the same model with a long context, so it runs for a while
    cfg = json.loads((long / "config.json").read_text())
    (long / "config.json").write_text(json.dumps({**cfg, "max_position_embeddings": 8192}))
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "generate.py"), "--model", str(long),
                             "--prompt", "Once", "--max-new-tokens", "8000", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.read(8)          # generation has started once text streams out
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err, err   # one status for Ctrl-C
    assert (first + rest).decode("utf-8", "replace").startswith("Once")
    generated = int(err.split("eval time")[1].split("/")[1].split()[0])
    assert 0 < generated < 8000          # stopped early, and said how far it got


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=1, max_size=60), st.floats(0.001, 1.0), st.floats(0.05, 1000))
def test_top_p_against_a_full_sort(logits, p, temperature):
    probs = probabilities(np.array(logits), temperature)
    order = np.argsort(-probs, kind="stable")
    cum = np.cumsum(probs[order])
    n = min(int(np.searchsorted(cum, p)) + 1, len(probs))  # the smallest prefix reaching p; at least one
    kept = top_p_filter(probs, p)
    assert len(kept) >= 1 and np.isclose(probs[kept].sum(), probs[order[:n]].sum())
    assert sample(np.array(logits, dtype=np.float32), np.random.default_rng(0), temperature=temperature,
                  top_p=p) in set(kept.tolist()) | set(order[:n].tolist())


def test_a_flat_distribution_with_a_tiny_top_p_keeps_the_top_token():
    probs = probabilities(np.zeros(50), 1000.0)
    assert len(top_p_filter(probs, 0.01)) == 1
    assert 0 <= sample(np.zeros(50, np.float32), np.random.default_rng(0), temperature=1000, top_k=50, top_p=0.01) < 50


CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    """A Qwen2-type checkpoint with SmolLM2's byte-level tokenizer.json, a ChatML template and a
    generation_config.json that asks for greedy decoding and lists two EOS ids."""
    from conftest import smollm2_tokenizer_json
    folder = write_checkpoint(tmp_path_factory.mktemp("qwen") / "q", "qwen2", tokenizer=smollm2_tokenizer_json(),
                              vocab=49152)
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>", "chat_template": CHATML}))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 0], "do_sample": False}))
    return folder


@pytest.mark.oracle
def test_family_folder_runs_raw_chat_and_inspect(qwen_folder):
    from model.formats.loader import load
    loaded = load(str(qwen_folder))
    assert loaded.tokenizer.stop_ids >= {0, 2} and loaded.defaults == {"temperature": 0.0}
    ids = loaded.chat.encode(loaded.tokenizer, [{"role": "user", "content": "Hi"}])
    assert ids == loaded.tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", special=True)
    a = run_generate("--model", str(qwen_folder), "--chat", "--prompt", "Hi", "--max-new-tokens", "6", "--seed", "1")
    b = run_generate("--model", str(qwen_folder), "--chat", "--prompt", "Hi", "--max-new-tokens", "6", "--seed", "2")
    assert a.returncode == 0 and a.stdout == b.stdout  # greedy from generation_config.json: seeds do not matter
    raw = run_generate("--model", str(qwen_folder), "--prompt", "Once upon", "--max-new-tokens", "4", "--seed", "1")
    assert raw.returncode == 0 and raw.stdout.startswith("Once upon")
    ins = run_generate("--model", str(qwen_folder), "--inspect", "--prompt", "Hello world", "--max-new-tokens", "2")
    assert ins.returncode == 0 and "layer 1" in ins.stdout and "ĠHello" not in ins.stderr


def test_list_architectures():
    res = run_generate("--list-architectures")
    assert res.returncode == 0
    for word in ("qwen2", "mistral", "llama3", "sliding-window", "refused by name"):
        assert word in res.stdout


def test_chat_templates_render_as_transformers_does():
    from model.chat import ChatFormat
    template = ("{%- set ns = namespace(n=0) %}{%- for m in messages %}{%- set ns.n = ns.n + 1 %}{%- endfor %}"
                "{{ bos_token }}{{ ns.n }} {{ messages | tojson }}{% if tools is none %} no tools{% endif %}")
    out = ChatFormat(template, tokens={"bos_token": "<s>"}).render([{"role": "user", "content": "café <b>"}])
    assert out == '<s>1 [{"role": "user", "content": "café <b>"}] no tools'


@pytest.mark.oracle
def test_bad_generation_config_is_named(qwen_folder, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(qwen_folder, bad, symlinks=True)
    for value in ({"temperature": -1}, {"top_p": 0}, {"top_k": "x"}, {"top_k": 2.5}, {"temperature": 2**64},
                  {"top_p": float("nan")}):
        (bad / "generation_config.json").write_text(json.dumps(value))
        assert_clean_error(run_generate("--model", str(bad), "--prompt", "x"), "generation_config.json")
