"""Small random GGUF checkpoints, written by the tests with gguf-py's writer, laid out as llama.cpp's
converter (convert_hf_to_gguf.py) writes a Llama model: its tensor names, its metadata keys, and
q / k rows permuted for its interleaved rotary layout.

The same variant and seed always give the same bytes, so golden files made by tests/make_golden.py
(transformers loading the file with `gguf_file=`) match what the tests write.
"""
import numpy as np

from .checkpoints import random_weights
from .paths import fixture_path, smollm2_gguf_path

gguf = __import__("pytest").importorskip("gguf")
from gguf import GGMLQuantizationType as Q  # noqa: E402

# the K-quants and IQ4_NL have no quantizer in gguf-py: their blocks are random bytes with the
# f16 scales set small, so the dequantized weights are sane; (offset of d, offset of dmin, scale)
RANDOM_BLOCKS = {Q.Q2_K: (80, 82, 2e-3), Q.Q3_K: (108, None, 5e-4), Q.Q4_K: (0, 2, 1e-4),
                 Q.Q5_K: (0, 2, 5e-5), Q.Q6_K: (208, None, 2e-5), Q.IQ4_NL: (0, None, 5e-4)}

VARIANTS = {
    # llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for attn_v, ffn_down and output; F32 norms; SentencePiece vocab
    "q4km-sp": dict(tokenizer="llama", hidden=256, ffn=512, layers=2, heads=4, kv=2, tied=False,
                    types={"default": Q.Q4_K, "attn_v": Q.Q6_K, "ffn_down": Q.Q6_K, "output": Q.Q6_K}),
    # the quantizers gguf-py has, one per tensor kind; GQA; SentencePiece vocab
    "legacy-sp": dict(tokenizer="llama", hidden=64, ffn=128, layers=2, heads=8, kv=2, tied=False,
                      types={"default": Q.Q8_0, "attn_q": Q.Q4_0, "attn_k": Q.Q4_1, "attn_v": Q.Q5_0,
                             "attn_output": Q.Q5_1, "ffn_gate": Q.F16, "ffn_up": Q.BF16, "token_embd": Q.Q8_0}),
    # SmolLM2's byte-level vocabulary, tied embeddings (no output.weight), the other K-quants
    "mixed-bpe-tied": dict(tokenizer="gpt2", hidden=256, ffn=256, layers=2, heads=4, kv=1, tied=True,
                           types={"default": Q.Q8_0, "attn_q": Q.Q2_K, "attn_k": Q.Q3_K, "attn_v": Q.Q5_K,
                                  "ffn_gate": Q.IQ4_NL, "token_embd": Q.Q6_K, "attn_output": Q.F32}),
}
NAMES = {"model.embed_tokens.weight": "token_embd", "model.norm.weight": "output_norm", "lm_head.weight": "output",
         "input_layernorm.weight": "attn_norm", "self_attn.q_proj.weight": "attn_q",
         "self_attn.k_proj.weight": "attn_k", "self_attn.v_proj.weight": "attn_v",
         "self_attn.o_proj.weight": "attn_output", "post_attention_layernorm.weight": "ffn_norm",
         "mlp.gate_proj.weight": "ffn_gate", "mlp.up_proj.weight": "ffn_up", "mlp.down_proj.weight": "ffn_down"}


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter: per head, rows [0..E/2) and [E/2..E) interleaved (for its rotary)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf: str) -> tuple[str, str]:
    """(GGUF tensor name, its kind) for a Hugging Face tensor name."""
    if hf.startswith("model.layers."):
        _, _, i, rest = hf.split(".", 3)
        kind = NAMES[rest]
        return f"blk.{i}.{kind}.weight", kind
    kind = NAMES[hf]
    return f"{kind}.weight", kind


def encode_tensor(w: np.ndarray, qtype, rng) -> np.ndarray:
    """The raw tensor data gguf-py's writer takes for `qtype`."""
    if qtype == Q.F32:
        return w.astype(np.float32)
    if qtype in RANDOM_BLOCKS:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        d_at, dmin_at, scale = RANDOM_BLOCKS[qtype]
        rows = w.shape[0]
        raw = rng.integers(0, 256, (rows, w.shape[1] // block, size), dtype=np.uint8)
        for at in (d_at, dmin_at):
            if at is not None:
                halves = (rng.uniform(0.2, 1.0, raw.shape[:2]) * scale).astype(np.float16)
                raw[:, :, at:at + 2] = halves.view(np.uint8).reshape(rows, -1, 2)
        return raw.reshape(rows, -1)
    return gguf.quants.quantize(w, qtype)


def write_gguf(folder, variant: str, seed: int = 0):
    """Write `<variant>.gguf` into folder; return its path."""
    v = VARIANTS[variant]
    rng = np.random.default_rng(seed + 1000)
    path = folder / f"{variant}.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    tokens, scores, types, merges, bos, eos = tokenizer_tables(v["tokenizer"])
    cfg = dict(hidden_size=v["hidden"], intermediate_size=v["ffn"], num_hidden_layers=v["layers"],
               num_attention_heads=v["heads"], num_key_value_heads=v["kv"], vocab_size=len(tokens),
               tie_word_embeddings=v["tied"])
    head_dim = v["hidden"] // v["heads"]
    writer.add_context_length(256)
    writer.add_embedding_length(v["hidden"])
    writer.add_block_count(v["layers"])
    writer.add_feed_forward_length(v["ffn"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_head_count(v["heads"])
    writer.add_head_count_kv(v["kv"])
    writer.add_rope_freq_base(10000.0 if v["tokenizer"] == "llama" else 100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model(v["tokenizer"])
    if v["tokenizer"] == "gpt2":
        writer.add_tokenizer_pre("smollm")
        writer.add_token_merges(merges)
    else:
        writer.add_token_scores(scores)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_add_bos_token(v["tokenizer"] == "llama")
    for name, w in random_weights(cfg, seed).items():
        if name == "lm_head.weight" and v["tied"]:
            continue
        out, kind = gguf_name(name)
        if kind == "attn_q":
            w = permute(w, v["heads"])
        elif kind == "attn_k":
            w = permute(w, v["kv"])
        qtype = Q.F32 if w.ndim == 1 else v["types"].get(kind, v["types"]["default"])
        data = encode_tensor(w, qtype, rng)
        writer.add_tensor(out, data, raw_shape=data.shape if qtype == Q.F32 else None,
                          raw_dtype=None if qtype == Q.F32 else qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tokenizer_tables(kind: str):
    """(tokens, scores, types, merges, bos, eos) of the Llama-2 vocabulary or of SmolLM2's."""
    if kind == "llama":
        from bpe.model_file import load_model_proto
        proto = load_model_proto(fixture_path("llama2-tokenizer.model"))
        return proto.pieces, proto.scores, proto.types, [], 1, 2
    reader = gguf.GGUFReader(str(smollm2_gguf_path()))
    fields = reader.fields
    tokens = [str(bytes(fields["tokenizer.ggml.tokens"].parts[i]), "utf-8") for i in fields["tokenizer.ggml.tokens"].data]
    merges = [str(bytes(fields["tokenizer.ggml.merges"].parts[i]), "utf-8") for i in fields["tokenizer.ggml.merges"].data]
    types = [int(fields["tokenizer.ggml.token_type"].parts[i][0]) for i in fields["tokenizer.ggml.token_type"].data]
    return tokens, None, types, merges, 1, 2


def llama3_rope_factors(cfg: dict) -> np.ndarray:
    """llama.cpp's converter (conversion/llama.py): Llama-3's scaling as one divisor per frequency."""
    import math
    rope = cfg["rope_scaling"]
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (cfg["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    old = rope["original_max_position_embeddings"]
    low, high = old / rope["low_freq_factor"], old / rope["high_freq_factor"]
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high:
            factors.append(1)
        elif wavelen > low:
            factors.append(rope["factor"])
        else:
            smooth = (old / wavelen - rope["low_freq_factor"]) / (rope["high_freq_factor"] - rope["low_freq_factor"])
            factors.append(1 / ((1 - smooth) / rope["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


def convert_checkpoint(folder, name: str, out_dir):
    """A family checkpoint (tests/checkpoints.py) as llama.cpp's converter lays it out, in F32:
    arch `qwen2` unpermuted with biases; `llama` (also Mistral) with q/k permuted; Llama-3 rope
    scaling as a rope_freqs tensor, linear as metadata. Mistral's window is written (llama.cpp's
    converter leaves it out)."""
    from .checkpoints import config_dict
    from model.weights import load_tensors
    cfg = config_dict(name)
    weights = load_tensors(folder / "model.safetensors")
    arch = "qwen2" if cfg.get("model_type") == "qwen2" else "llama"
    path = out_dir / f"{name}.gguf"
    writer = gguf.GGUFWriter(str(path), arch)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(cfg["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    rope = cfg.get("rope_scaling") or {}
    if rope.get("type", rope.get("rope_type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    if cfg.get("sliding_window"):
        writer.add_sliding_window(cfg["sliding_window"])
    add_llama2_vocab(writer)
    if rope.get("rope_type") == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg))
    for hf, w in weights.items():
        if hf == "lm_head.weight" and cfg["tie_word_embeddings"]:
            continue
        if hf.endswith("bias"):
            _, _, i, rest = hf.split(".", 3)
            out, kind = f"blk.{i}.{NAMES[rest.replace('bias', 'weight')]}.bias", None
        else:
            out, kind = gguf_name(hf)
        if arch == "llama" and kind == "attn_q":
            w = permute(w, heads)
        elif arch == "llama" and kind == "attn_k":
            w = permute(w, kv)
        writer.add_tensor(out, np.ascontiguousarray(w, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def add_llama2_vocab(writer) -> int:
    """The Llama-2 SentencePiece vocabulary as a GGUF's tokenizer.ggml.* keys; returns its size."""
    tokens, scores, types, _, bos, eos = tokenizer_tables("llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    return len(tokens)


GEMMA3_NAMES = {"input_layernorm.weight": "attn_norm", "self_attn.q_norm.weight": "attn_q_norm",
                "self_attn.k_norm.weight": "attn_k_norm", "post_attention_layernorm.weight": "post_attention_norm",
                "pre_feedforward_layernorm.weight": "ffn_norm", "post_feedforward_layernorm.weight": "post_ffw_norm"}


def write_gemma3_gguf(path, *, hidden=32, ffn=48, layers=6, heads=2, kv=1, head_dim=16, window=4, seed=0,
                      drop=(), metadata=None, bad_norm=False):
    """A small random Gemma 3 GGUF as llama.cpp's converter lays one out (F32 tensors, norms stored as 1 + w,
    no q/k permutation), with the Llama-2 vocabulary. `drop` leaves metadata keys out, `metadata` overrides
    or adds keys, `bad_norm` gives layer 0's attention norm the wrong size: the bad files of the tests."""
    rng = np.random.default_rng(seed)
    keys = {"context_length": 256, "embedding_length": hidden, "block_count": layers, "feed_forward_length": ffn,
            "attention.head_count": heads, "attention.head_count_kv": kv, "attention.key_length": head_dim,
            "attention.value_length": head_dim, "attention.layer_norm_rms_epsilon": 1e-6,
            "rope.freq_base": 1e6, "attention.sliding_window": window, **(metadata or {})}
    writer = gguf.GGUFWriter(str(path), "gemma3")
    for key, value in keys.items():
        if key in drop:
            continue
        add = writer.add_float32 if isinstance(value, float) else writer.add_uint32
        add(f"gemma3.{key}", value)
    V = add_llama2_vocab(writer)
    writer.add_add_space_prefix(False)
    shapes = {"token_embd": (V, hidden), "output_norm": (hidden,)}
    for i in range(layers):
        p = f"blk.{i}."
        shapes.update({p + "attn_norm": (hidden + (1 if bad_norm and i == 0 else 0),), p + "attn_q": (heads * head_dim, hidden),
                       p + "attn_q_norm": (head_dim,), p + "attn_k": (kv * head_dim, hidden), p + "attn_k_norm": (head_dim,),
                       p + "attn_v": (kv * head_dim, hidden), p + "attn_output": (hidden, heads * head_dim),
                       p + "post_attention_norm": (hidden,), p + "ffn_norm": (hidden,), p + "ffn_gate": (ffn, hidden),
                       p + "ffn_up": (ffn, hidden), p + "ffn_down": (hidden, ffn), p + "post_ffw_norm": (hidden,)})
    for name, shape in shapes.items():
        if len(shape) == 1:
            w = 1.0 + rng.standard_normal(shape) * 0.3          # 1 + w, as the converter stores Gemma's norms
        else:
            w = rng.standard_normal(shape) * (0.5 / np.sqrt(shape[1]))
        writer.add_tensor(name + ".weight", w.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
