#!/usr/bin/env python3
"""Write tests/golden/*.npz: what transformers.LlamaForCausalLM computes on our test checkpoints.

Run after changing tests/checkpoints.py:  python tests/make_golden.py   (needs torch + transformers).
The reference model is the checkpoint as reloaded from disk in float32 (never converted in
memory with .to(bfloat16), which would also round the rotary inv_freq buffer).
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from checkpoints import CONFIGS, prompts, write_checkpoint  # noqa: E402

GREEDY_STEPS = 32


def reference(folder: Path) -> dict[str, np.ndarray]:
    """Logits and greedy tokens from transformers for one checkpoint folder."""
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    out = {}
    with torch.no_grad():
        for name, ids in prompts().items():
            logits = model(torch.tensor([ids])).logits[0].numpy()  # [T, V]
            out[f"{name}_ids"] = np.array(ids)
            out[f"{name}_last"] = logits[-1]
            out[f"{name}_head"] = logits[:, :64]  # every position, first 64 vocabulary columns
        ids = list(prompts()["fifty"][:10])
        for _ in range(GREEDY_STEPS):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        out["greedy"] = np.array(ids[10:])
    return out


def main() -> None:
    """Write one golden file per test checkpoint."""
    (HERE / "golden").mkdir(exist_ok=True)
    for name in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_checkpoint(Path(tmp) / name, name)
            np.savez_compressed(HERE / "golden" / f"{name}.npz", **reference(folder))
        print(f"wrote tests/golden/{name}.npz")


if __name__ == "__main__":
    main()
