"""The model's hyperparameters, read from a Hugging Face `config.json`, checked once.

Dimension letters used in shape comments across `model/`:
  T  tokens in this forward pass        S  positions in the KV cache (past + current)
  D  hidden size (2048 in TinyLlama)     F  feed-forward size (5632)
  H  query heads (32)                    K  key/value heads (4); each serves H // K query heads
  E  head dimension (D // H = 64)        V  vocabulary size (32000)
  L  layers (22)
"""
import json
from dataclasses import dataclass
from pathlib import Path

DTYPE = "float32"  # every weight and activation is computed in this dtype


class ConfigError(ValueError):
    """Raised for a config.json we cannot run, with the file and field named."""


@dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a Llama-architecture model (TinyLlama, Llama-2)."""
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

    def __post_init__(self):
        positive = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                              f"num_key_value_heads {self.num_key_value_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim {self.head_dim} must be even for rotary embeddings")

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (H // K; 8 in TinyLlama)."""
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_dict(cls, cfg: dict, source: str = "config.json") -> "LlamaConfig":
        """Build from a config dict; reject features this implementation does not have, by name."""
        def need(name, kind):
            if name not in cfg:
                raise ConfigError(f"{source}: missing field '{name}'")
            value = cfg[name]
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{source}: field '{name}' must be an integer, got {value!r}")
            if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{source}: field '{name}' must be a number, got {value!r}")
            return kind(value)

        model_type = cfg.get("model_type", "llama")
        if model_type != "llama":
            raise ConfigError(f"{source}: model_type '{model_type}' is not supported (only 'llama')")
        # rope settings: `rope_theta` + `rope_scaling` (transformers 4), or `rope_parameters` (5)
        rope = {**(cfg.get("rope_scaling") or {}), **(cfg.get("rope_parameters") or {})}
        kind = rope.get("rope_type", rope.get("type", "default"))
        scaling = None if kind == "default" else rope
        unsupported = {
            "rope_scaling": scaling,
            "attention_bias": cfg.get("attention_bias", False),
            "mlp_bias": cfg.get("mlp_bias", False),
        }
        for name, value in unsupported.items():
            if value:
                raise ConfigError(f"{source}: '{name}' = {value!r} is not supported")
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"{source}: hidden_act '{act}' is not supported (only 'silu', i.e. SwiGLU)")
        heads = need("num_attention_heads", int)
        hidden = need("hidden_size", int)
        # HF's documented defaults for optional fields: K = H, E = D // H, theta 10000, untied
        kv = need("num_key_value_heads", int) if "num_key_value_heads" in cfg else heads
        head_dim = need("head_dim", int) if cfg.get("head_dim") is not None else hidden // max(heads, 1)
        theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        eos = cfg.get("eos_token_id")
        try:
            return cls(
                hidden_size=hidden, intermediate_size=need("intermediate_size", int),
                num_hidden_layers=need("num_hidden_layers", int), num_attention_heads=heads,
                num_key_value_heads=kv, head_dim=head_dim, vocab_size=need("vocab_size", int),
                max_position_embeddings=need("max_position_embeddings", int),
                rms_norm_eps=need("rms_norm_eps", float), rope_theta=float(theta),
                tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                bos_token_id=cfg.get("bos_token_id"),
                eos_token_id=eos[0] if isinstance(eos, list) else eos)
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
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(cfg, source=str(path))
