"""What a run trains: its settings (nanoGPT's names), the presets, and a fresh model's config and
initial weights.

`shakespeare-char` is nanoGPT's CPU recipe ("I only have a macbook") rebuilt as a Llama: the
corpus's characters, 4 layers of width 128, 4 query heads sharing 2 KV heads, SwiGLU 384, tied
embeddings, context 64, batch 12, 2000 steps of AdamW (lr 1e-3, 100 warmup steps, cosine to 1e-4,
betas 0.9 / 0.99, weight decay 0.1 on matrices, clipping at 1.0), float32.
"""
import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..config import LlamaConfig
from ..errors import OptionError
from ..weights import expected_shapes


class SettingsError(OptionError):
    """A setting we cannot train with: `option` names the TrainSettings field, the message its value."""


@dataclass(frozen=True)
class TrainSettings:
    """Every number of a run; each is a command-line option of scripts/train_model.py."""
    steps: int = 2000
    batch: int = 12
    context: int = 64
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    clip: float = 1.0
    eval_every: int = 250
    eval_windows: int = 100        # windows of each split in a periodic estimate (the end uses all of val)
    seed: int = 1337
    layers: int = 4
    dim: int = 128
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 384
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tokenizer: str = "char"

    def with_options(self, **given) -> "TrainSettings":
        """These settings with the given options (None = not given) put over them, then checked."""
        return replace(self, **{k: v for k, v in given.items() if v is not None}).checked()

    def checked(self) -> "TrainSettings":
        """The same settings, or SettingsError naming the first bad option."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is int and f.name != "seed" and f.name != "warmup" and not value > 0:
                raise SettingsError(f.name, f"{value}: must be a positive integer")
            if f.type is float and not (math.isfinite(value) and value > 0) and f.name != "weight_decay":
                raise SettingsError(f.name, f"{value}: must be a positive finite number")
        if self.seed < 0 or self.warmup < 0:
            name = "seed" if self.seed < 0 else "warmup"
            raise SettingsError(name, f"{getattr(self, name)}: must be >= 0")
        if not (math.isfinite(self.weight_decay) and 0 <= self.weight_decay < 1 / self.lr):
            raise SettingsError("weight_decay", f"{self.weight_decay}: must be finite, >= 0 and below 1/lr")
        for name in ("beta1", "beta2"):
            if not 0 < getattr(self, name) < 1:
                raise SettingsError(name, f"{getattr(self, name)}: must be in (0, 1)")
        if self.min_lr > self.lr:
            raise SettingsError("min_lr", f"{self.min_lr} is above the learning rate {self.lr}")
        if self.dim % self.heads:
            raise SettingsError("heads", f"{self.heads} does not divide the width {self.dim}")
        if self.heads % self.kv_heads:
            raise SettingsError("kv_heads", f"{self.kv_heads} does not divide the {self.heads} heads")
        if (self.dim // self.heads) % 2:
            raise SettingsError("heads", f"{self.heads}: the head size {self.dim} / {self.heads} = "
                                         f"{self.dim // self.heads} must be even (rotary pairs)")
        too_big = {"layers": 1024, "dim": 1 << 16, "ffn": 1 << 18, "context": 1 << 16, "batch": 1 << 16}
        for name, limit in too_big.items():
            if getattr(self, name) > limit:
                raise SettingsError(name, f"{getattr(self, name)} is beyond {limit}")
        return self

    def as_dict(self) -> dict:
        """The settings as plain JSON values (kept in trainer_state.json)."""
        return asdict(self)


PRESETS = {
    "shakespeare-char": TrainSettings(),
    # tuning a model on instructions or preferences (--sft, --dpo): a few hundred steps of 4 x 256 tokens,
    # as LLMs-from-scratch's chapter 7 (its lr is for full fine-tuning; LoRA takes the larger one)
    "tuning": TrainSettings(steps=100, batch=4, context=256, lr=5e-5, min_lr=5e-6, warmup=5, weight_decay=0.0,
                            eval_every=50, eval_windows=25),
    "tuning-lora": TrainSettings(steps=100, batch=4, context=256, lr=5e-4, min_lr=5e-5, warmup=5, weight_decay=0.0,
                                 eval_every=50, eval_windows=25),
}
SHAPE = ("layers", "dim", "heads", "kv_heads", "ffn", "context", "rope_theta", "rms_norm_eps", "tokenizer")


def new_config(s: TrainSettings, vocab_size: int, bos: int | None, eos: int | None) -> LlamaConfig:
    """The Llama config of a model trained from scratch with these settings (tied embeddings)."""
    return LlamaConfig(hidden_size=s.dim, intermediate_size=s.ffn, num_hidden_layers=s.layers,
                       num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, head_dim=s.dim // s.heads,
                       vocab_size=vocab_size, max_position_embeddings=s.context, rms_norm_eps=s.rms_norm_eps,
                       rope_theta=s.rope_theta, tie_word_embeddings=True, bos_token_id=bos, eos_token_id=eos)


def init_weights(cfg: LlamaConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """nanoGPT's init: N(0, 0.02) matrices, N(0, 0.02 / sqrt(2L)) for the projections that write into the
    residual stream (o_proj, down_proj), norms 1, biases 0; float32."""
    out = {}
    for name, shape in expected_shapes(cfg).items():
        if name.endswith("norm.weight"):
            out[name] = np.ones(shape, np.float32)
        elif name.endswith(".bias"):
            out[name] = np.zeros(shape, np.float32)
        else:
            std = 0.02 / math.sqrt(2 * cfg.num_hidden_layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
            out[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(std))
    return out


def count_parameters(weights: dict) -> int:
    """Number of trained numbers (a tied head counts once)."""
    return sum(int(w.size) for w in weights.values())
