"""The model's hyperparameters, read from a Hugging Face `config.json`, checked once.

Dimension letters used in shape comments across `model/`:
  T  tokens in this forward pass        S  positions in the KV cache (past + current)
  D  hidden size (2048 in TinyLlama)     F  feed-forward size (5632)
  H  query heads (32)                    K  key/value heads (4); each serves H // K query heads
  E  head dimension (D // H = 64)        V  vocabulary size (32000)
  L  layers (22)

One block serves the whole family; what differs is a config field here:
  model_type  llama (TinyLlama, Llama-3.x, SmolLM2), mistral, qwen2, qwen3, gemma3_text (and gemma3's text)
  rope_scaling   linear / llama3 / dynamic (model/rope.py)         Llama-3.x, older fine-tunes
  qkv_bias, o_bias   biases on the attention projections           Qwen2 (q, k, v)
  windows    per layer, the sliding attention window or None       Mistral (every layer), Gemma 3 (5 in 6)
  head_dim   read from the config when given (SmolLM2, Qwen2)      else D // H
  qk_norm    RMSNorm over each head's q and k before rotary       Qwen3, Gemma 3
  sandwich_norms  the attention's and the MLP's outputs normed     Gemma 3 (four norms per block)
                  before they join the residual
  norm_offset     RMSNorm scales by (offset + w)                   Gemma 3 in HF files: 1 (GGUF stores 1 + w: 0)
  mlp_act    silu (SwiGLU) or gelu_tanh (GeGLU)                    Gemma 3: GeGLU
  embed_scale     the embedding multiplied by sqrt(D)              Gemma 3
  attn_scale      scores scaled by this instead of E^-1/2          Gemma 3: query_pre_attn_scalar^-1/2
  local_rope_theta   rotary base of the sliding-window layers      Gemma 3: 10,000 (global layers 1,000,000)
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DTYPE = "float32"  # every weight and activation is computed in this dtype
MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "gemma3")
MAX_POSITIONS = 1 << 22  # a context longer than this is refused (the KV cache must fit in memory)
MAX_SIZE = 1 << 20       # no dimension, head or layer count of a real model comes near this


class ConfigError(ValueError):
    """Raised for a config.json we cannot run, with the file and field named."""


@dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a Llama-architecture model (TinyLlama, Llama-2/3, SmolLM2, Qwen2, Mistral)."""
    hidden_size: int               # D
    intermediate_size: int         # F
    num_hidden_layers: int         # L
    num_attention_heads: int       # H
    num_key_value_heads: int       # K
    head_dim: int                  # E
    vocab_size: int                # V
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    model_type: str = "llama"
    rope_scaling: dict | None = None          # normalized: {"rope_type": ..., "factor": ..., ...}
    qkv_bias: bool = False
    o_bias: bool = False
    windows: tuple = field(default=())        # per layer: sliding window size or None ( () = none )
    rope_divisors: tuple | None = None        # GGUF `rope_freqs`: inv_freq[i] / divisors[i]
    qk_norm: bool = False                     # Qwen3, Gemma 3: q_norm, k_norm [E] over each head
    sandwich_norms: bool = False              # Gemma 3: post_attention / pre_ and post_feedforward_layernorm
    norm_offset: float = 0.0                  # Gemma 3 (HF): y = xhat * (1 + w)
    mlp_act: str = "silu"                     # silu (SwiGLU) or gelu_tanh (GeGLU)
    embed_scale: float | None = None          # Gemma 3: sqrt(D)
    attn_scale: float | None = None           # Gemma 3: query_pre_attn_scalar^-1/2 (None: E^-1/2)
    local_rope_theta: float | None = None     # Gemma 3: the sliding layers' rotary base (unscaled)

    def __post_init__(self):
        positive = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings"]
        for name in positive:
            value = getattr(self, name)
            if not 0 < value <= (MAX_POSITIONS if name == "max_position_embeddings" else MAX_SIZE * 4):
                raise ConfigError(f"{name} must be positive and sane, got {value}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                              f"num_key_value_heads {self.num_key_value_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim {self.head_dim} must be even for rotary embeddings")
        for name in ("rms_norm_eps", "rope_theta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        if self.windows and len(self.windows) != self.num_hidden_layers:
            raise ConfigError(f"{len(self.windows)} layer windows for {self.num_hidden_layers} layers")
        if self.mlp_act not in ("silu", "gelu_tanh"):
            raise ConfigError(f"mlp_act {self.mlp_act!r}: only silu (SwiGLU) and gelu_tanh (GeGLU)")
        for name in ("embed_scale", "attn_scale", "local_rope_theta"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        if self.rope_divisors is not None and len(self.rope_divisors) != self.head_dim // 2:
            raise ConfigError(f"rope_freqs has {len(self.rope_divisors)} values; head_dim {self.head_dim} needs "
                              f"{self.head_dim // 2}")

    def window(self, layer: int) -> int | None:
        """The sliding attention window of a layer, or None for full attention."""
        return self.windows[layer] if self.windows else None

    def rope(self, layer: int) -> tuple[float, dict | None]:
        """(theta, scaling) of a layer's rotary embedding: Gemma 3's sliding layers have their own base."""
        if self.local_rope_theta is not None and self.window(layer) is not None:
            return self.local_rope_theta, None
        return self.rope_theta, self.rope_scaling

    @property
    def family(self) -> str:
        """The block's family: llama (also mistral, qwen2), qwen3 or gemma3."""
        return "gemma3" if self.model_type.startswith("gemma3") else self.model_type if self.model_type == "qwen3" \
            else "llama"

    @classmethod
    def from_dict(cls, cfg: dict, source: str = "config.json") -> "LlamaConfig":
        """Build from a config dict; reject features this implementation does not have, by name."""
        try:
            return cls(**_fields(cfg))
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def load(cls, path) -> "LlamaConfig":
        """Read and check `config.json`."""
        path = Path(path)
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from None
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ConfigError(f"{path}: not valid JSON ({str(e)[:80]})") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(cfg, source=str(path))


def _integer(cfg, name, default=None):
    value = cfg.get(name, default)
    if value is None and default is None and name not in cfg:
        raise ConfigError(f"missing field '{name}'")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"field '{name}' must be an integer, got {value!r}")
    return value


def _number(cfg, name, default=None):
    value = cfg.get(name, default)
    if value is None and name not in cfg and default is None:
        raise ConfigError(f"missing field '{name}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"field '{name}' must be a number, got {value!r}")
    return float(value)


def _flag(cfg, name, default=False) -> bool:
    value = cfg.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"field '{name}' must be true or false, got {value!r}")
    return value


def _token_id(cfg, name):
    value = cfg.get(name)
    if isinstance(value, list):  # Llama-3 lists several EOS ids; the first is the main one
        if not value:
            return None
        value = value[0]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"field '{name}' must be a token id or a list of them, got {cfg.get(name)!r}")
    return value


def rope_scaling(cfg: dict) -> dict | None:
    """The normalized rope scaling of a config: transformers 4's `rope_scaling` or 5's `rope_parameters`."""
    raw = {}
    for key in ("rope_scaling", "rope_parameters"):
        value = cfg.get(key)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"field '{key}' must be an object, got {value!r}")
        raw.update(value or {})
    kind = raw.get("rope_type", raw.get("type", "default"))
    if kind == "default":
        return None
    needs = {"linear": ["factor"], "dynamic": ["factor"],
             "llama3": ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"]}
    if kind not in needs:
        raise ConfigError(f"rope_scaling type {kind!r} is not supported (supported: {', '.join(needs)})")
    out = {"rope_type": kind}
    for name in needs[kind]:
        try:
            out[name] = _number(raw, name)
        except ConfigError as e:
            raise ConfigError(f"rope_scaling ({kind}): {e}") from None
        if not (math.isfinite(out[name]) and out[name] > 0):
            raise ConfigError(f"rope_scaling ({kind}): '{name}' must be positive, got {raw[name]!r}")
    if kind == "llama3" and out["high_freq_factor"] == out["low_freq_factor"]:
        raise ConfigError("rope_scaling (llama3): high_freq_factor must differ from low_freq_factor")
    return out


def _windows(cfg: dict, model_type: str, layers: int) -> tuple:
    """Per-layer sliding windows: Mistral's on every layer; Qwen2's from layer_types / max_window_layers."""
    window = cfg.get("sliding_window")
    if model_type == "llama" or window is None:
        return ()
    if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        raise ConfigError(f"field 'sliding_window' must be a positive integer, got {window!r}")
    if model_type == "mistral":
        return (window,) * layers
    if not _flag(cfg, "use_sliding_window"):
        return ()
    types = cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise ConfigError(f"field 'layer_types' must list one type per layer ({layers})")
        return tuple(window if t == "sliding_attention" else None for t in types)
    first = _integer(cfg, "max_window_layers", layers)
    return tuple(window if i >= first else None for i in range(layers))


# What a config.json may leave out because transformers' class has it as a default (save_pretrained
# writes only the differences): Qwen3Config's and Gemma3TextConfig's defaults.
DEFAULTS = {
    "qwen3": {"hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 32768,
              "head_dim": 128, "tie_word_embeddings": False},
    "gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131072,
                    "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "bos_token_id": 2, "eos_token_id": 1,
                    "query_pre_attn_scalar": 256, "sliding_window": 4096, "sliding_window_pattern": 6},
}
ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}


def _fields(cfg: dict) -> dict:
    """Every LlamaConfig field from a config.json dict, each checked and named when wrong."""
    model_type = cfg.get("model_type", "llama")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"model_type {model_type!r} is not supported (supported: {', '.join(MODEL_TYPES)})")
    if model_type == "gemma3":                    # the multimodal config: its text part is the language model
        text = cfg.get("text_config")
        if not isinstance(text, dict):
            raise ConfigError("model_type gemma3 needs a 'text_config' object (the language model's config)")
        cfg = {"model_type": "gemma3_text", **text}
        model_type = "gemma3_text"
    cfg = {**DEFAULTS.get(model_type, {}), **{k: v for k, v in cfg.items() if v is not None or k not in
                                              DEFAULTS.get(model_type, {})}}
    gemma = model_type == "gemma3_text"
    act = cfg.get("hidden_activation", cfg.get("hidden_act", "silu")) if gemma else cfg.get("hidden_act", "silu")
    if act not in ACTIVATIONS or (not gemma and act != "silu"):
        raise ConfigError(f"hidden_act {act!r} is not supported (only 'silu', i.e. SwiGLU"
                          + (", and gelu_pytorch_tanh, GeGLU)" if gemma else ")"))
    if _flag(cfg, "mlp_bias"):
        raise ConfigError("'mlp_bias' = true is not supported")
    for name in ("final_logit_softcapping", "attn_logit_softcapping"):
        if cfg.get(name) is not None:
            raise ConfigError(f"'{name}' = {cfg[name]!r} is not supported (Gemma 2's; Gemma 3 has none)")
    if _flag(cfg, "use_bidirectional_attention"):
        raise ConfigError("'use_bidirectional_attention' = true is not supported (a causal language model only)")
    heads, hidden = _integer(cfg, "num_attention_heads"), _integer(cfg, "hidden_size")
    layers = _integer(cfg, "num_hidden_layers")
    if heads <= 0:
        raise ConfigError(f"num_attention_heads must be positive, got {heads}")
    attention_bias = _flag(cfg, "attention_bias")
    fields = dict(
        hidden_size=hidden, intermediate_size=_integer(cfg, "intermediate_size"), num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=_integer(cfg, "num_key_value_heads", heads),
        head_dim=_integer(cfg, "head_dim", hidden // heads) if cfg.get("head_dim") is not None else hidden // heads,
        vocab_size=_integer(cfg, "vocab_size"), max_position_embeddings=_integer(cfg, "max_position_embeddings"),
        rms_norm_eps=_number(cfg, "rms_norm_eps"),
        tie_word_embeddings=_flag(cfg, "tie_word_embeddings", gemma),
        bos_token_id=_token_id(cfg, "bos_token_id"), eos_token_id=_token_id(cfg, "eos_token_id"),
        model_type=model_type,
        qkv_bias=model_type == "qwen2" or attention_bias, o_bias=attention_bias and model_type != "qwen2",
        qk_norm=model_type in ("qwen3", "gemma3_text"), mlp_act=ACTIVATIONS[act])
    if gemma:
        windows, theta, scaling, local = _gemma_attention(cfg, layers)
        fields.update(windows=windows, rope_theta=theta, rope_scaling=scaling, local_rope_theta=local,
                      sandwich_norms=True, norm_offset=1.0, embed_scale=float(np.float32(math.sqrt(hidden))),
                      attn_scale=_number(cfg, "query_pre_attn_scalar") ** -0.5)
    else:
        params = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
        fields.update(rope_scaling=rope_scaling(cfg), windows=_windows(cfg, model_type, layers),
                      rope_theta=_number(params, "rope_theta", None) if "rope_theta" in params
                      else _number(cfg, "rope_theta", 10000.0))
    return fields


def _gemma_attention(cfg: dict, layers: int) -> tuple:
    """Gemma 3's layers: (windows, global theta, global scaling, local theta), from transformers 5's
    `layer_types` + `rope_parameters` {full_attention, sliding_attention} or 4's `sliding_window_pattern`
    + `rope_theta` + `rope_local_base_freq` + `rope_scaling`."""
    window = _integer(cfg, "sliding_window")
    if window <= 0:
        raise ConfigError(f"field 'sliding_window' must be a positive integer, got {window}")
    types = cfg.get("layer_types")
    if types is None:
        pattern = _integer(cfg, "sliding_window_pattern", 6)
        if pattern <= 0:
            raise ConfigError(f"field 'sliding_window_pattern' must be positive, got {pattern}")
        types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
    if not isinstance(types, list) or len(types) != layers or \
            any(t not in ("sliding_attention", "full_attention") for t in types):
        raise ConfigError(f"field 'layer_types' must list sliding_attention or full_attention for each of the "
                          f"{layers} layers")
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params):
        full, local = params.get("full_attention") or {}, params.get("sliding_attention") or {}
        if not isinstance(full, dict) or not isinstance(local, dict):
            raise ConfigError("field 'rope_parameters' must map full_attention and sliding_attention to objects")
        if rope_scaling({"rope_parameters": local}) is not None:
            raise ConfigError("rope_parameters.sliding_attention: only the default rope type is supported")
        theta = _number(full, "rope_theta", 1_000_000.0)
        local_theta = _number(local, "rope_theta", 10_000.0)
        scaling = rope_scaling({"rope_parameters": full})
    else:
        theta = _number(cfg, "rope_theta", 1_000_000.0)
        local_theta = _number(cfg, "rope_local_base_freq", 10_000.0)
        scaling = rope_scaling(cfg)
    windows = tuple(window if t == "sliding_attention" else None for t in types)
    return windows, theta, scaling, local_theta
