"""From a GGUF file to our model: the one table of names, the config, and the q/k un-permutation.

GGUF names tensors as llama.cpp does (`blk.3.attn_q.weight`); we use Hugging Face's names
(`model.layers.3.self_attn.q_proj.weight`), so everything after loading is shared with the
safetensors path. The config comes from the `<arch>.*` metadata keys.

subtle: llama.cpp's converter permutes the rows of q and k (for Llama-architecture files) so
that its rotary code can rotate adjacent pairs (x0, x1), (x2, x3), ... Hugging Face's rotary
code rotates halves (x_i, x_{i+E/2}). We undo the permutation at load: within each head, the
rows come interleaved as [r0, r_{E/2}, r1, r_{E/2+1}, ...] and go back to [r0, r1, ..., r_{E/2}, ...].
With grouped-query attention k has K heads, not H: the permutation used K, so must we. Forget
this and the model loads, runs, and talks nonsense: the classic broken export.
"""
import numpy as np

from files.gguf import GGUFFile
from files.quants import KNOWN_UNSUPPORTED, TYPES, dequantize

from ..config import ConfigError, LlamaConfig
from ..speed import fused_layout
from ..weights import WeightsError, expected_shapes

ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3",   # GGUF general.architecture -> model_type
                 "gemma3": "gemma3_text"}
PERMUTED = {"llama"}  # architectures whose q/k rows llama.cpp's converter permutes (not qwen2)

# GGUF name -> Hugging Face name; {i} is the layer
NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
    "blk.{i}.attn_q.bias": "model.layers.{i}.self_attn.q_proj.bias",      # Qwen2
    "blk.{i}.attn_k.bias": "model.layers.{i}.self_attn.k_proj.bias",
    "blk.{i}.attn_v.bias": "model.layers.{i}.self_attn.v_proj.bias",
    "blk.{i}.attn_output.bias": "model.layers.{i}.self_attn.o_proj.bias",
}
NAMES_QK_NORM = {  # Qwen3 and Gemma 3: RMSNorm over each head's q and k
    "blk.{i}.attn_q_norm.weight": "model.layers.{i}.self_attn.q_norm.weight",
    "blk.{i}.attn_k_norm.weight": "model.layers.{i}.self_attn.k_norm.weight",
}
NAMES_GEMMA3 = {  # Gemma 3's four norms: ffn_norm is the pre-feed-forward norm, not Llama's post-attention one
    "blk.{i}.post_attention_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.pre_feedforward_layernorm.weight",
    "blk.{i}.post_ffw_norm.weight": "model.layers.{i}.post_feedforward_layernorm.weight",
}
ROPE_FREQS = "rope_freqs.weight"  # Llama-3's rope scaling, as divisors (read into the config)
LOCAL_ROPE_THETA = 10_000.0       # llama.cpp's rotary base for Gemma 3's sliding layers (not in the file)
GEMMA3_PATTERN = 6                # llama.cpp's Gemma 3: every sixth layer global, the rest sliding
GEMMA3_27B_LAYERS = 62            # llama.cpp scales the 27B's scores by (D / H)^-1/2, the others' by E^-1/2


def hf_name(gguf_name: str, model_type: str = "llama") -> str | None:
    """The Hugging Face name of a GGUF tensor name, or None if the table has no entry."""
    table = {**NAMES, **(NAMES_QK_NORM if model_type in ("qwen3", "gemma3_text") else {}),
             **(NAMES_GEMMA3 if model_type == "gemma3_text" else {})}
    parts = gguf_name.split(".")
    if len(parts) > 2 and parts[0] == "blk" and parts[1].isdigit():
        template = table.get(".".join(["blk", "{i}"] + parts[2:]))
        return template.format(i=int(parts[1])) if template else None
    return table.get(gguf_name)


def config_from_metadata(g: GGUFFile) -> LlamaConfig:
    """The model config from the `<arch>.*` keys; unsupported architectures refused by name."""
    meta, source = g.metadata, str(g.path)
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise ConfigError(f"{source}: architecture {arch!r} is not supported (supported: {', '.join(sorted(ARCHITECTURES))})")

    def get(key, kind, default=None):
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise ConfigError(f"{source}: metadata {arch}.{key} is missing")
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"{source}: metadata {arch}.{key} must be a number, got {value!r}")
        return value

    hidden, heads = get("embedding_length", int), get("attention.head_count", int)
    if heads <= 0:
        raise ConfigError(f"{source}: metadata {arch}.attention.head_count must be positive, got {heads}")
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = meta.get(f"{arch}.vocab_size", len(tokens) if isinstance(tokens, list) else None)
    embed = g.tensors.get("token_embd.weight")
    if vocab is None and embed is not None:
        vocab = embed.shape[0]
    layers = get("block_count", int)
    rotary = meta.get(f"{arch}.rope.dimension_count")
    head_dim = get("attention.key_length", int, hidden // heads)
    if rotary is not None and rotary != head_dim:
        raise ConfigError(f"{source}: partial rotary embeddings ({arch}.rope.dimension_count {rotary} of head "
                          f"size {head_dim}) are not supported")
    window = meta.get(f"{arch}.attention.sliding_window", 0)  # llama.cpp writes none for Mistral; honoured if there
    if arch == "gemma3" and f"{arch}.attention.sliding_window" not in meta:
        raise ConfigError(f"{source}: metadata {arch}.attention.sliding_window is missing (Gemma 3's local layers)")
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ConfigError(f"{source}: metadata {arch}.attention.sliding_window must be a count, got {window!r}")
    fields = dict(
        hidden_size=hidden, intermediate_size=get("feed_forward_length", int),
        num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=get("attention.head_count_kv", int, heads),
        head_dim=head_dim,
        vocab_size=vocab if isinstance(vocab, int) else 0,
        max_position_embeddings=get("context_length", int),
        rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", (int, float))),
        rope_theta=float(get("rope.freq_base", (int, float), 10000.0)),
        tie_word_embeddings="output.weight" not in g.tensors,
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id"), eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
        model_type=ARCHITECTURES[arch], rope_scaling=_rope_scaling(meta, arch, source),
        qkv_bias="blk.0.attn_q.bias" in g.tensors, o_bias="blk.0.attn_output.bias" in g.tensors,
        windows=(window,) * layers if window else (), rope_divisors=_rope_divisors(g),
        qk_norm=arch in ("qwen3", "gemma3"))
    if arch == "gemma3":
        if not window:
            raise ConfigError(f"{source}: metadata {arch}.attention.sliding_window must be positive for Gemma 3")
        scale_by = hidden / heads if layers == GEMMA3_27B_LAYERS else head_dim
        fields.update(  # llama.cpp's converter stores the norms as 1 + w: read them as they are (offset 0)
            windows=tuple(None if (i + 1) % GEMMA3_PATTERN == 0 else window for i in range(layers)),
            local_rope_theta=LOCAL_ROPE_THETA, sandwich_norms=True, norm_offset=0.0, mlp_act="gelu_tanh",
            embed_scale=float(np.float32(np.sqrt(hidden))), attn_scale=float(scale_by) ** -0.5)
    try:
        return LlamaConfig(**fields)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _rope_scaling(meta: dict, arch: str, source: str) -> dict | None:
    """Linear rope scaling from `<arch>.rope.scaling.*` (Llama-3's comes as the rope_freqs tensor)."""
    kind = meta.get(f"{arch}.rope.scaling.type", "none")
    if kind in ("none", None):
        return None
    factor = meta.get(f"{arch}.rope.scaling.factor")
    if kind != "linear":
        raise ConfigError(f"{source}: rope scaling type {kind!r} is not supported (only linear, and Llama-3's rope_freqs)")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise ConfigError(f"{source}: metadata {arch}.rope.scaling.factor must be a positive number, got {factor!r}")
    return {"rope_type": "linear", "factor": float(factor)}


def _rope_divisors(g: GGUFFile) -> tuple | None:
    """The `rope_freqs` tensor (F32, one divisor per frequency), if the file has one."""
    info = g.tensors.get(ROPE_FREQS)
    if info is None:
        return None
    if info.type not in TYPES or len(info.shape) != 1:
        raise WeightsError(f"{g.path}: {ROPE_FREQS} must be a vector of floats")
    values = dequantize(g.tensor_bytes(info), info.type, info.shape)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise WeightsError(f"{g.path}: {ROPE_FREQS} holds values that are not positive numbers")
    return tuple(float(v) for v in values)


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary row permutation of q or k: [heads * E, D] (or a bias [heads * E]),
    per head rows [0, E/2, 1, E/2 + 1, ...] -> [0, 1, ..., E - 1]."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_gguf_weights(g: GGUFFile, cfg: LlamaConfig) -> dict[str, np.ndarray]:
    """Every tensor as float32 by Hugging Face name, checked against the config's shapes."""
    shapes = expected_shapes(cfg)
    names = {}
    for name, info in g.tensors.items():
        if name == ROPE_FREQS:
            continue
        ours = hf_name(name, cfg.model_type)
        if ours is None or ours not in shapes:
            raise WeightsError(f"{g.path}: unexpected tensor {name}")
        if info.type not in TYPES:
            kind = KNOWN_UNSUPPORTED[info.type].name
            raise WeightsError(f"{g.path}: tensor {name} has type {kind}, which we cannot dequantize")
        if info.shape != shapes[ours]:
            raise WeightsError(f"{g.path}: tensor {name} has shape {list(info.shape)}, expected {list(shapes[ours])}")
        names[ours] = info
    missing = [n for n in shapes if n not in names]
    if missing:
        raise WeightsError(f"{g.path}: missing {len(missing)} tensors, e.g. {missing[0]}")
    weights = {}
    # subtle: plain pages here; on this kind of VM, huge-page faults stall in compaction
    # while a whole quantized file is expanded (measured: 5 s instead of 9-14 s for 1.1B values)
    layout = fused_layout(cfg, huge=False)            # each layer's matrices in reading order (model/llama.py)
    for ours, info in names.items():
        w = layout[ours] if ours in layout else np.empty(info.shape, np.float32)
        for a, b, raw in g.tensor_row_blocks(info):         # a block of rows at a time: no whole raw copy
            dequantize(raw, info.type, (b - a,) + tuple(info.shape[1:]), out=w[a:b])
        if cfg.model_type in PERMUTED and ours.endswith(("q_proj.weight", "q_proj.bias")):
            w[...] = unpermute(w, cfg.num_attention_heads)
        elif cfg.model_type in PERMUTED and ours.endswith(("k_proj.weight", "k_proj.bias")):
            w[...] = unpermute(w, cfg.num_key_value_heads)
        weights[ours] = w
    return weights


def open_gguf(path) -> GGUFFile:
    """Parse a GGUF header (GGUFError naming the file on any problem)."""
    return GGUFFile(path)
