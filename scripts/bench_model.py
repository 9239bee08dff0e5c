#!/usr/bin/env python3
"""Model benchmarks on a TinyLlama-1.1B-shaped random bf16 checkpoint (written here, so offline).

Ratios against references measured in the same run:
  decode  : our tokens/s / the machine's ceiling (one pass of mat-vec products over every float32
            weight matrix used per token: the memory-bandwidth bound)      goal >= 0.75
  prefill : 128-token prompt, transformers' time / ours (when torch + transformers are installed)
                                                                          goal >= 1.0
  memory  : peak resident memory of load + generate / float32 weight bytes  goal <= 1.2
  load    : our load time (bf16 file -> float32 model) / time to read the file once  goal <= 3

  python scripts/bench_model.py [--dir FOLDER] [--tokens 16]
The checkpoint (2.2 GB) is kept in --dir (default: a temp folder, deleted after).
"""
import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from model.config import LlamaConfig  # noqa: E402
from model.weights import expected_shapes, float32_to_bf16_bits  # noqa: E402

TINYLLAMA = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=2048,
                 intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                 num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
                 rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
                 bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")


def write_checkpoint(folder: Path) -> Path:
    """Stream a random TinyLlama-shaped bf16 model.safetensors into folder (once)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.safetensors"
    (folder / "config.json").write_text(json.dumps(TINYLLAMA, indent=2))
    if path.exists():
        return path
    shapes = expected_shapes(LlamaConfig.from_dict(TINYLLAMA))
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    rng = np.random.default_rng(0)
    print(f"writing a {offset / 1e9:.1f} GB random checkpoint to {folder} ...", file=sys.stderr)
    with open(str(path) + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in shapes.items():
            scale = 1.0 if name.endswith("norm.weight") else 0.02
            values = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
            if name.endswith("norm.weight"):
                values += 1
            f.write(float32_to_bf16_bits(values).tobytes())
    os.replace(str(path) + ".tmp", path)
    return path


def read_once(path: Path) -> float:
    """Seconds to read the whole file once into memory, 64 MB at a time."""
    buf = bytearray(64 << 20)
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.perf_counter() - t


def child(folder: str, tokens: int) -> None:
    """Run in a fresh process: load, measure the ceiling, prefill 128, decode; print JSON."""
    from model.llama import Llama
    load_s = float("inf")
    for _ in range(2):  # best of two, as for reading the file (the first touch of fresh memory varies)
        model = None
        t = time.perf_counter()
        model = Llama.load(folder)
        load_s = min(load_s, time.perf_counter() - t)
    weight_bytes = sum(w.nbytes for name, w in model.w.items())
    matrices = [w for name, w in model.w.items() if w.ndim == 2 and name != "model.embed_tokens.weight"]
    if model.cfg.tie_word_embeddings:
        matrices.append(model.lm_head)
    x = {w.shape[1]: np.ones((1, w.shape[1]), np.float32) for w in matrices}

    def one_pass():
        t = time.perf_counter()
        for w in matrices:
            x[w.shape[1]] @ w.T
        return time.perf_counter() - t
    ceiling_s = min(one_pass() for _ in range(3))
    prompt = np.random.default_rng(1).integers(3, 32000, 128).tolist()
    prefill_s = float("inf")
    for _ in range(2):  # best of two, as for transformers
        model.new_cache(model.cfg.max_position_embeddings)
        t = time.perf_counter()
        logits = model.forward(prompt)
        prefill_s = min(prefill_s, time.perf_counter() - t)
    steps = []
    for _ in range(tokens):
        t = time.perf_counter()
        logits = model.forward([int(np.argmax(logits))])
        steps.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(dict(load_s=load_s, ceiling_s=ceiling_s, prefill_s=prefill_s,
                          decode_s=float(np.median(steps)), peak=peak, weight_bytes=weight_bytes)))


def transformers_prefill(folder: Path) -> float | None:
    """Seconds for transformers' float32 CPU forward over the same 128-token prompt (None if absent)."""
    try:
        import torch
        from transformers import LlamaForCausalLM
    except ImportError:
        return None
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompt = torch.tensor([np.random.default_rng(1).integers(3, 32000, 128).tolist()])
    best = float("inf")
    with torch.no_grad():
        for _ in range(2):
            t = time.perf_counter()
            model(prompt)
            best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    """Write the checkpoint, measure in a child process, print ratios."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", help="keep the checkpoint here (reused on the next run)")
    p.add_argument("--tokens", type=int, default=16, help="decode steps to time (median)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.tokens)
        return 0
    tmp = None if args.dir else tempfile.TemporaryDirectory()
    folder = Path(args.dir or tmp.name)
    path = write_checkpoint(folder)
    read_s = min(read_once(path) for _ in range(2))
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), "--tokens", str(args.tokens)],
                         capture_output=True, text=True)
    if out.returncode:
        print(out.stderr, file=sys.stderr)
        return 1
    r = json.loads(out.stdout)
    ours_tps, ceiling_tps = 1 / r["decode_s"], 1 / r["ceiling_s"]
    print(f"decode  : {ours_tps:.2f} tok/s, ceiling {ceiling_tps:.2f} tok/s, ratio {ours_tps / ceiling_tps:.2f} (goal >= 0.75)")
    hf = transformers_prefill(folder)
    if hf is None:
        print(f"prefill : 128 tokens in {r['prefill_s']:.2f} s; transformers not installed, no reference")
    else:
        print(f"prefill : 128 tokens in {r['prefill_s']:.2f} s, transformers {hf:.2f} s, "
              f"ratio {hf / r['prefill_s']:.2f} (goal >= 1.0)")
    print(f"memory  : peak {r['peak'] / 1e9:.2f} GB, float32 weights {r['weight_bytes'] / 1e9:.2f} GB, "
          f"ratio {r['peak'] / r['weight_bytes']:.2f} (goal <= 1.2)")
    print(f"load    : {r['load_s']:.2f} s, reading the file once {read_s:.2f} s, "
          f"ratio {r['load_s'] / read_s:.2f} (goal <= 3)")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
