"""The model's hyperparameters, read from a Hugging Face `config.json`, checked once.

Dimension letters used in shape comments across `model/`:
  T  tokens in this forward pass        S  positions in the KV cache (past + current)
  D  hidden size (2048 in TinyLlama)     F  feed-forward size (5632)
  H  query heads (32)                    K  key/value heads (4); each serves H // K query heads
  E  head dimension (D // H = 64)        V  vocabulary size (32000)
  L  layers (22)

One forward pass serves the whole small-Llama family; what differs is a config field here:
  model_type  llama (TinyLlama, Llama-3.x, SmolLM2), mistral, qwen2
  rope_scaling   linear / llama3 / dynamic (model/rope.py)         Llama-3.x, older fine-tunes
  qkv_bias, o_bias   biases on the attention projections           Qwen2 (q, k, v)
  windows    per layer, the sliding attention window or None       Mistral (every layer)
  head_dim   read from the config when given (SmolLM2, Qwen2)      else D // H
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

DTYPE = "float32"  # every weight and activation is computed in this dtype
MODEL_TYPES = ("llama", "mistral", "qwen2")
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
        if self.rope_divisors is not None and len(self.rope_divisors) != self.head_dim // 2:
            raise ConfigError(f"rope_freqs has {len(self.rope_divisors)} values; head_dim {self.head_dim} needs "
                              f"{self.head_dim // 2}")

    def window(self, layer: int) -> int | None:
        """The sliding attention window of a layer, or None for full attention."""
        return self.windows[layer] if self.windows else None

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


def _fields(cfg: dict) -> dict:
    """Every LlamaConfig field from a config.json dict, each checked and named when wrong."""
    model_type = cfg.get("model_type", "llama")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"model_type {model_type!r} is not supported (supported: {', '.join(MODEL_TYPES)})")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ConfigError(f"hidden_act {act!r} is not supported (only 'silu', i.e. SwiGLU)")
    if _flag(cfg, "mlp_bias"):
        raise ConfigError("'mlp_bias' = true is not supported")
    heads, hidden = _integer(cfg, "num_attention_heads"), _integer(cfg, "hidden_size")
    layers = _integer(cfg, "num_hidden_layers")
    if heads <= 0:
        raise ConfigError(f"num_attention_heads must be positive, got {heads}")
    scaling = rope_scaling(cfg)
    params = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
    theta = _number(params, "rope_theta", None) if "rope_theta" in params else _number(cfg, "rope_theta", 10000.0)
    attention_bias = _flag(cfg, "attention_bias")
    return dict(
        hidden_size=hidden, intermediate_size=_integer(cfg, "intermediate_size"), num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=_integer(cfg, "num_key_value_heads", heads),
        head_dim=_integer(cfg, "head_dim", hidden // heads) if cfg.get("head_dim") is not None else hidden // heads,
        vocab_size=_integer(cfg, "vocab_size"), max_position_embeddings=_integer(cfg, "max_position_embeddings"),
        rms_norm_eps=_number(cfg, "rms_norm_eps"), rope_theta=theta,
        tie_word_embeddings=_flag(cfg, "tie_word_embeddings"),
        bos_token_id=_token_id(cfg, "bos_token_id"), eos_token_id=_token_id(cfg, "eos_token_id"),
        model_type=model_type, rope_scaling=scaling,
        qkv_bias=model_type == "qwen2" or attention_bias, o_bias=attention_bias and model_type != "qwen2",
        windows=_windows(cfg, model_type, layers))
