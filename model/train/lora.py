"""Low-rank adapters (LoRA): the base weights frozen, a small B A learned beside each chosen projection.

    W = W0 + s B A,   s = alpha / r,   A: [r, in],  B: [out, r]   (B starts at zero, so W starts at W0)

The block runs W as it is (the merged matrix); its backward gives dL/dW (linear_backward), and
    dL/dA = s B^T dW          dL/dB = s dW A^T
Only A and B have gradients kept and AdamW moments. The run writes the merged model as its HF folder
and DIR/adapter/ in PEFT's format (adapter_config.json, adapter_model.safetensors), which
`peft.PeftModel.from_pretrained` loads onto the base model.
"""
import json
from dataclasses import dataclass, field

import numpy as np

from files.safetensors import save_safetensors

from ..errors import OptionError

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def target_names(weights: dict, targets) -> list[str]:
    """The HF names of every layer's chosen projections (`targets`: q_proj, ..., down_proj)."""
    unknown = [t for t in targets if t not in PROJECTIONS]
    if unknown:
        raise OptionError("lora_targets", f"{unknown[0]}: not a projection ({', '.join(PROJECTIONS)})")
    return [n for n in weights if n.endswith(".weight") and n.split(".")[-2] in targets and ".layers." in n]


@dataclass
class LoRA:
    """The adapters of a run: A [r, in] and B [out, r] per target, and the frozen W0 they add to."""
    r: int
    alpha: float
    targets: tuple
    base: dict                                  # name -> W0 (frozen copies)
    params: dict = field(default_factory=dict)  # name + ".lora_A" / ".lora_B" -> array (what AdamW updates)

    @classmethod
    def new(cls, weights: dict, r: int, alpha: float, targets, rng: np.random.Generator) -> "LoRA":
        """Adapters for every chosen projection: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's Kaiming-uniform), B = 0."""
        if r < 1:
            raise OptionError("lora", f"{r}: the rank must be a positive integer")
        if not alpha > 0:
            raise OptionError("lora_alpha", f"{alpha}: must be positive")
        names = target_names(weights, targets)
        lora = cls(r, float(alpha), tuple(targets), {n: weights[n].copy() for n in names})
        for n in names:
            out, inp = weights[n].shape
            bound = 1 / np.sqrt(inp)
            lora.params[n + ".lora_A"] = rng.uniform(-bound, bound, (r, inp)).astype(weights[n].dtype)
            lora.params[n + ".lora_B"] = np.zeros((out, r), weights[n].dtype)
        return lora

    @property
    def scale(self) -> float:
        return self.alpha / self.r

    def merge_into(self, weights: dict) -> None:
        """W = W0 + s B A for every target, written into the model's weights in place."""
        s = self.scale
        for n, w0 in self.base.items():
            w = weights[n]
            np.matmul(self.params[n + ".lora_B"], self.params[n + ".lora_A"], out=w)       # [out, in]
            w *= w.dtype.type(s)
            w += w0

    def grads(self, full: dict) -> dict:
        """dL/dA = s B^T dW, dL/dB = s dW A^T from the full gradients dW of the merged weights."""
        s, out = self.scale, {}
        for n in self.base:
            dW, A, B = full[n], self.params[n + ".lora_A"], self.params[n + ".lora_B"]
            out[n + ".lora_A"] = (B.T @ dW) * dW.dtype.type(s)                            # [r, in]
            out[n + ".lora_B"] = (dW @ A.T) * dW.dtype.type(s)                            # [out, r]
        return out

    def peft_files(self, folder, base_model: str) -> None:
        """DIR/adapter/: adapter_config.json and adapter_model.safetensors as PEFT writes them."""
        folder.mkdir(parents=True, exist_ok=True)
        config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": self.r, "lora_alpha": self.alpha,
                  "target_modules": sorted(set(self.targets)), "lora_dropout": 0.0, "bias": "none",
                  "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "use_rslora": False,
                  "use_dora": False, "modules_to_save": None, "base_model_name_or_path": base_model}
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=1))
        tensors = {f"base_model.model.{n[:-len('.weight')]}.{k.rsplit('.', 1)[1]}.weight": a
                   for k, a in self.params.items() for n in [k.rsplit(".", 1)[0]]}
        save_safetensors(folder / "adapter_model.safetensors", tensors, "F32")
