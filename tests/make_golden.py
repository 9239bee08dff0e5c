#!/usr/bin/env python3
"""Write tests/golden/*.npz: what transformers.LlamaForCausalLM computes on our test checkpoints.

Run after changing testkit/checkpoints.py:  python tests/make_golden.py   (needs torch + transformers).
The reference model is the checkpoint as reloaded from disk in float32 (never converted in
memory with .to(bfloat16), which would also round the rotary inv_freq buffer).
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from testkit.checkpoints import CONFIGS, prompts, write_checkpoint  # noqa: E402

GREEDY_STEPS = 32


def reference(folder: Path) -> dict[str, np.ndarray]:
    """Logits and greedy tokens from transformers for one checkpoint folder."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
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


def reference_gguf(path: Path) -> dict[str, np.ndarray]:
    """Logits and greedy tokens from transformers loading a GGUF file (gguf_file=, float32)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    ids = prompts()["fifty"]
    out = {"fifty_ids": np.array(ids)}
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy()
        out["fifty_last"], out["fifty_head"] = logits[-1], logits[:, :64]
        greedy = list(ids[:10])
        for _ in range(GREEDY_STEPS):
            last = model(torch.tensor([greedy])).logits[0, -1]
            top2 = torch.topk(last, 2).values
            assert float(top2[0] - top2[1]) > 1e-3, "a near-tie: greedy tokens would depend on the CPU"
            greedy.append(int(last.argmax()))
    out["greedy"] = np.array(greedy[10:])
    return out


SMOLLM2_RAW = ["Once upon a time", "The three primary colors are", "def fibonacci(n):",
               "Byte pair encoding is"]
SMOLLM2_CHAT = [[{"role": "user", "content": "What is the capital of France?"}],
                [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Say hello."}],
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
                 {"role": "user", "content": "Name a color."}]]


def reference_smollm2(path: Path) -> dict:
    """The real SmolLM2 through transformers: chat ids from its own template, greedy continuations."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bpe.files import load_tokenizer
    tok = load_tokenizer(path)  # ours, exact against HF on this vocabulary (tests/test_bytelevel.py)
    hf_tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    cases = [{"kind": "raw", "prompt": p, "ids": tok.encode(p)} for p in SMOLLM2_RAW]
    for messages in SMOLLM2_CHAT:
        ids = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        cases.append({"kind": "chat", "messages": messages, "ids": list(ids)})
    for case in cases:
        ids = list(case["ids"])
        with torch.no_grad():
            for _ in range(GREEDY_STEPS):
                ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
                if ids[-1] == 2:  # <|im_end|>
                    break
        case["greedy"] = ids[len(case["ids"]):]
    return {"cases": cases}


def main() -> None:
    """Write the golden files that are missing (all of them with --force): one per test checkpoint,
    one per GGUF variant, and the real SmolLM2's when it is installed."""
    force = "--force" in sys.argv
    import json
    from testkit.gguf_checkpoints import VARIANTS, write_gguf
    from model.formats.smollm2 import smollm2_gguf
    (HERE / "golden").mkdir(exist_ok=True)
    for name in CONFIGS:
        if (HERE / "golden" / f"{name}.npz").exists() and not force:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_checkpoint(Path(tmp) / name, name)
            np.savez_compressed(HERE / "golden" / f"{name}.npz", **reference(folder))
        print(f"wrote tests/golden/{name}.npz")
    for name in VARIANTS:
        if (HERE / "golden" / f"gguf-{name}.npz").exists() and not force:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = write_gguf(Path(tmp), name)
            np.savez_compressed(HERE / "golden" / f"gguf-{name}.npz", **reference_gguf(path))
        print(f"wrote tests/golden/gguf-{name}.npz")
    if smollm2_gguf() is not None and (force or not (HERE / "golden" / "smollm2.json").exists()):
        (HERE / "golden" / "smollm2.json").write_text(json.dumps(reference_smollm2(smollm2_gguf()), indent=1))
        print("wrote tests/golden/smollm2.json")


if __name__ == "__main__":
    main()
