"""Live oracle (CI runs it with `pytest -m oracle`): transformers on the same checkpoints, on CPU.

Also checks that the committed golden files still equal what transformers computes, and that
our chat encoding equals transformers' apply_chat_template with TinyLlama's template.
"""
import numpy as np
import pytest

from model.chat import encode_chat
from model.llama import Llama

from testkit.checkpoints import CONFIGS, greedy, write_checkpoint
from conftest import ROOT, fixture_path

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module", autouse=True)
def oracle_installed():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")

# the chat_template of TinyLlama-1.1B-Chat-v1.0's tokenizer_config.json (Zephyr's)
TINYLLAMA_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] "
    "+ eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}"
    "\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")


@pytest.fixture(scope="module", params=list(CONFIGS))
def live(request, tmp_path_factory):
    from make_golden import reference
    folder = write_checkpoint(tmp_path_factory.mktemp(request.param), request.param)
    return request.param, Llama.load(folder), reference(folder)


def test_against_live_transformers(live):
    name, model, ref = live
    for prompt in ["one", "fifty"]:
        ids = ref[f"{prompt}_ids"].tolist()
        model.new_cache(len(ids))
        logits = model.forward(ids, all_logits=True)
        np.testing.assert_allclose(logits[-1], ref[f"{prompt}_last"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(logits[:, :64], ref[f"{prompt}_head"], atol=1e-4, rtol=0)
    assert greedy(model, ref["fifty_ids"].tolist()[:10], len(ref["greedy"])) == ref["greedy"].tolist()


def test_golden_files_are_current(live):
    name, _, ref = live
    gold = np.load(ROOT / "tests" / "golden" / f"{name}.npz")
    # subtle: logits move by ~1e-5 between CPUs' BLAS kernels; compare at the live tests'
    # tolerance, and token ids exactly
    for key, value in ref.items():
        if np.issubdtype(value.dtype, np.integer):
            np.testing.assert_array_equal(gold[key], value, err_msg=f"{name}: {key}; rerun tests/make_golden.py")
        else:
            np.testing.assert_allclose(gold[key], value, atol=1e-4, rtol=0, err_msg=f"{name}: {key}; rerun tests/make_golden.py")


@pytest.mark.parametrize("messages", [
    [{"role": "system", "content": "You are a friendly chatbot who always responds in the style of a pirate."},
     {"role": "user", "content": "How many helicopters can a human eat in one sitting?"}],
    [{"role": "user", "content": "  two spaces, 42 and an emoji 😀"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke.\nA short one."}],
])
def test_chat_ids_equal_apply_chat_template(messages, llama_model_path):
    from transformers import PreTrainedTokenizerFast
    from bpe import SentencePieceTokenizer
    hf = PreTrainedTokenizerFast(tokenizer_file=str(fixture_path("llama2-tokenizer.json")),
                                 bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    hf.chat_template = TINYLLAMA_TEMPLATE
    text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = hf(text, add_special_tokens=False)["input_ids"]
    ours = encode_chat(SentencePieceTokenizer.load(llama_model_path), messages)
    assert ours == [1] + expected


@pytest.mark.parametrize("tied", [False, True])
def test_checkpoint_written_by_transformers(tmp_path, tied):
    """A checkpoint saved by transformers itself (its own config.json form, bf16) loads and agrees."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=150, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=tied, rope_theta=50000.0)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp_path)
    ref = LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = [1, 450, 6635, 3290, 373, 278, 1775]
    with torch.no_grad():
        want = ref(torch.tensor([ids])).logits[0].numpy()
    ours = Llama.load(tmp_path)
    ours.new_cache(len(ids))
    np.testing.assert_allclose(ours.forward(ids, all_logits=True), want, atol=1e-4, rtol=0)


FAMILY_CONFIGS = {
    "llama3": ("LlamaConfig", "LlamaForCausalLM", dict(rope_scaling=dict(rope_type="llama3", factor=8.0,
               low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=16), rope_theta=500000.0)),
    "linear": ("LlamaConfig", "LlamaForCausalLM", dict(rope_scaling=dict(rope_type="linear", factor=3.0))),
    "dynamic": ("LlamaConfig", "LlamaForCausalLM", dict(rope_scaling=dict(rope_type="dynamic", factor=2.0))),
    "attention-bias": ("LlamaConfig", "LlamaForCausalLM", dict(attention_bias=True)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=True)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=6)),
}


@pytest.mark.parametrize("name", list(FAMILY_CONFIGS))
def test_family_checkpoint_written_by_transformers(tmp_path, name):
    """Each family member as transformers itself saves it (random init, its own config.json form):
    logits within 1e-4, cached decode equal to a full forward, 32 greedy tokens identical."""
    import torch
    import transformers
    config_class, model_class, extra = FAMILY_CONFIGS[name]
    cfg = getattr(transformers, config_class)(vocab_size=512, hidden_size=64, intermediate_size=128,
                                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                              max_position_embeddings=128, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(cfg)
    with torch.no_grad():  # biases start at zero in a fresh model: give them values that matter
        for p_name, p in model.named_parameters():
            if p_name.endswith("bias"):
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path)
    ref = getattr(transformers, model_class).from_pretrained(tmp_path, dtype=torch.float32,
                                                             attn_implementation="eager").eval()
    ids = list(np.random.default_rng(0).integers(3, 512, 20))
    with torch.no_grad():
        want = ref(torch.tensor([ids])).logits[0].numpy()
        reference = list(ids)
        for _ in range(32):
            reference.append(int(ref(torch.tensor([reference])).logits[0, -1].argmax()))
    ours = Llama.load(tmp_path)
    ours.new_cache(len(ids))
    np.testing.assert_allclose(ours.forward(ids, all_logits=True), want, atol=1e-4, rtol=0)
    assert greedy(ours, ids, 32) == reference[len(ids):]
