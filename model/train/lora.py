"""Low-rank adapters (LoRA): the base weights frozen, a small B A learned beside each chosen projection.

    W = W0 + s B A,   s = alpha / r,   A: [r, in],  B: [out, r]   (B starts at zero, so W starts at W0)

The block runs W as it is (the merged matrix). Its backward, with the weights frozen, hands each
projection's output gradient dy [N, out] and input x [N, in] to `taps` (model/llama.py block_backward);
from dL/dW = dy^T x, without ever forming that [out, in] matrix:
    dL/dA = s B^T dW = s (dy B)^T x          dL/dB = s dW A^T = s dy^T (x A^T)
After each step W moves by s (B' A' - B A), so no copy of W0 is kept (float32 rounding of the sums stays
near 1e-7 of W per step). Only A and B have gradients and AdamW moments. The run writes the merged model as its HF folder
and DIR/adapter/ in PEFT's format (adapter_config.json, adapter_model.safetensors), which
`peft.PeftModel.from_pretrained` loads onto the base model.
"""
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

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
    """The adapters of a run: A [r, in] and B [out, r] per target (the weights W already hold W0 + s B A)."""
    r: int
    alpha: float
    targets: tuple
    names: list                                 # the HF names of the adapted weights
    params: dict = field(default_factory=dict)  # name + ".lora_A" / ".lora_B" -> array (what AdamW updates)

    @classmethod
    def new(cls, weights: dict, r: int, alpha: float, targets, rng: np.random.Generator) -> "LoRA":
        """Adapters for every chosen projection: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's Kaiming-uniform), B = 0."""
        if r < 1:
            raise OptionError("lora", f"{r}: the rank must be a positive integer")
        if not alpha > 0:
            raise OptionError("lora_alpha", f"{alpha}: must be positive")
        names = target_names(weights, targets)
        lora = cls(r, float(alpha), tuple(targets), names)
        for n in names:
            out, inp = weights[n].shape
            bound = 1 / np.sqrt(inp)
            lora.params[n + ".lora_A"] = rng.uniform(-bound, bound, (r, inp)).astype(weights[n].dtype)
            lora.params[n + ".lora_B"] = np.zeros((out, r), weights[n].dtype)
        return lora

    @classmethod
    def load(cls, folder, weights: dict, r: int, alpha: float, targets) -> "LoRA":
        """The adapters a run saved in folder/adapter_model.safetensors (PEFT's names), for --resume."""
        from files.safetensors import load_tensors
        lora = cls(r, float(alpha), tuple(targets), target_names(weights, targets))
        saved = load_tensors(Path(folder) / "adapter_model.safetensors")
        for n in lora.names:
            stem = "base_model.model." + n[:-len(".weight")]
            for kind, shape in (("A", (r, weights[n].shape[1])), ("B", (weights[n].shape[0], r))):
                a = saved.get(f"{stem}.lora_{kind}.weight")
                if a is None or a.shape != shape:
                    raise OptionError("resume", f"{folder}: adapter_model.safetensors has no {shape} lora_{kind} "
                                      f"for {n}")
                lora.params[f"{n}.lora_{kind}"] = a.astype(weights[n].dtype)
        return lora

    @property
    def scale(self) -> float:
        return self.alpha / self.r

    def snapshot(self) -> dict:
        """A copy of A and B (before an optimizer step: `move_weights` takes it)."""
        return {k: a.copy() for k, a in self.params.items()}

    def move_weights(self, weights: dict, before: dict | None = None) -> None:
        """W += s (B A - B_before A_before) for every target, in place (before None: W += s B A, the
        adapters added to weights that do not hold them yet). One [out, 2r] x [2r, in] product each."""
        s = self.scale
        for n in self.names:
            A, B, w = self.params[n + ".lora_A"], self.params[n + ".lora_B"], weights[n]
            if before is not None:
                B = np.concatenate([B, -before[n + ".lora_B"]], axis=1)             # [out, 2r]
                A = np.concatenate([A, before[n + ".lora_A"]], axis=0)              # [2r, in]
            delta = B @ A                                                            # [out, in]
            delta *= w.dtype.type(s)
            w += delta

    def taps(self, cfg) -> tuple:
        """(tap, grads): hand `tap` to loss_and_grads; it adds into `grads` dL/dA and dL/dB of every adapter.

            dA = s (dy B)^T x   [r, in]      dB = s dy^T (x A^T)   [out, r]
        dy [N, out] is the projection's slice of its fused part's output gradient (q|k|v, gate|up)."""
        H, K, E, F = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.intermediate_size
        rows = {"qkv": [("self_attn.q_proj", 0, H * E), ("self_attn.k_proj", H * E, (H + K) * E),
                        ("self_attn.v_proj", (H + K) * E, (H + 2 * K) * E)],
                "o_proj": [("self_attn.o_proj", None, None)], "down": [("mlp.down_proj", None, None)],
                "gate_up": [("mlp.gate_proj", 0, F), ("mlp.up_proj", F, 2 * F)]}
        adapted, grads, s, lock = set(self.names), {}, self.scale, threading.Lock()

        def tap(layer: int, part: str, dy: np.ndarray, x: np.ndarray) -> None:
            for stem, a, b in rows[part]:
                n = f"model.layers.{layer}.{stem}.weight"
                if n in adapted:
                    d, A, B = dy[:, a:b], self.params[n + ".lora_A"], self.params[n + ".lora_B"]
                    one = d.dtype.type(s)
                    dA = (d @ B).T @ x * one                                          # [r, in]
                    dB = d.T @ (x @ A.T) * one                                        # [out, r]
                    with lock:                                   # a batch's parts may come from two threads
                        for key, value in ((n + ".lora_A", dA), (n + ".lora_B", dB)):
                            if key in grads:
                                grads[key] += value
                            else:
                                grads[key] = value
        return tap, grads

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
