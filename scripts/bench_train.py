#!/usr/bin/env python3
"""Training benchmarks, ratios measured in this process (interleaved on this noisy machine).

  --bench step      the preset's step (loss_and_grads + clip + AdamW) vs the same model, batch and
                    optimizer in PyTorch eager (transformers' LlamaForCausalLM, 2 threads, no compile)
  --bench preset    the whole shakespeare-char preset end to end (time, validation loss per character)
                    and the same wall time with --tokenizer bpe:N for a few N
  --bench memory    peak memory of a run against weights + gradients + two AdamW moments + one batch's activations
  --bench smollm2   fine-tuning SmolLM2-135M: seconds per step and peak memory

Needs `.[oracle]` (torch, transformers) for --bench step.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bpe.cli import Parser  # noqa: E402


def preset_model(vocab: int = 65):
    """The preset's config and initial weights (float32)."""
    from model.train.recipe import TrainSettings, init_weights, new_config
    s = TrainSettings()
    cfg = new_config(s, vocab, None, None)
    return s, cfg, init_weights(cfg, np.random.default_rng(0))


def bench_step(pairs: int) -> None:
    """Interleaved step times, ours vs PyTorch eager, on the same batches."""
    import torch
    import transformers
    from model.train import loss_and_grads
    from model.train.export import config_json
    from model.train.optim import AdamW, clip_grad_norm
    torch.set_num_threads(2)
    s, cfg, w = preset_model()
    fields = {k: v for k, v in config_json(cfg).items() if k not in ("architectures", "torch_dtype")}
    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(**fields, attn_implementation="eager"))
    ref.load_state_dict({n: torch.tensor(a) for n, a in w.items()}, strict=False)
    ref.tie_weights()
    decay = [p for n, p in ref.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in ref.named_parameters() if p.dim() < 2]
    topt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=1e-3, betas=(0.9, 0.99), fused=False, foreach=True)
    opt = AdamW(w, betas=(0.9, 0.99), weight_decay=0.1)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 65, (s.batch, s.context + 1)) for _ in range(8)]

    def ours(b):
        loss, g = loss_and_grads(cfg, w, b[:, :-1], b[:, 1:])
        clip_grad_norm(g, 1.0)
        opt.step(w, g, 1e-3)

    def theirs(b):
        x = torch.tensor(b)
        topt.zero_grad(set_to_none=True)
        logits = ref(x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 65), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        topt.step()

    for b in batches[:3]:  # warm up both
        ours(b), theirs(b)
    ratios, a_times, b_times = [], [], []
    for i in range(pairs):
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        for _ in range(5):
            ours(b)
        t1 = time.perf_counter()
        for _ in range(5):
            theirs(b)
        t2 = time.perf_counter()
        a_times.append((t1 - t0) / 5)
        b_times.append((t2 - t1) / 5)
        ratios.append(a_times[-1] / b_times[-1])
    print(f"step (B={s.batch}, T={s.context}, 4 layers, width 128): ours {np.median(a_times) * 1e3:.1f} ms, "
          f"PyTorch eager {np.median(b_times) * 1e3:.1f} ms; ours / PyTorch = {np.median(ratios):.2f}x "
          f"(median of {pairs} interleaved pairs; range {min(ratios):.2f}-{max(ratios):.2f}; goal <= 1.0x, 0.5x)")


def run_cli(*args) -> tuple[float, dict, int]:
    """Run train_model.py; its wall time, its final log entry and its peak RSS (KB)."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_model.py"), *args],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"error: train_model.py failed: {res.stderr.strip().splitlines()[-1:]}")
    out = Path(args[args.index("--out") + 1])
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return wall, last, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def bench_preset(corpus: str, bpe_sizes: list[int]) -> None:
    """The preset end to end, then bpe:N runs given the same training time (steps scaled by a probe's step time)."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, last, _ = run_cli("--input", corpus, "--out", f"{tmp}/char", "--preset", "shakespeare-char")
        print(f"shakespeare-char preset: {wall:.1f} s end to end (goal <= 180 s), {last['train_s']:.1f} s of it in "
              f"training steps; validation loss {last['val_per_char']:.4f} nats/char on the whole validation split "
              f"({last['val_windows']} windows; goal <= 1.70)")
        for n in bpe_sizes:
            _, probe, _ = run_cli("--input", corpus, "--out", f"{tmp}/probe{n}", "--tokenizer", f"bpe:{n}",
                                  "--steps", "30", "--eval-every", "1000", "--eval-windows", "1")
            steps = max(int(last["train_s"] / (probe["train_s"] / 30)), 30)
            wall_n, last_n, _ = run_cli("--input", corpus, "--out", f"{tmp}/bpe{n}", "--tokenizer", f"bpe:{n}",
                                        "--steps", str(steps))
            print(f"  bpe:{n} at equal training time: {steps} steps, {last_n['train_s']:.1f} s of steps "
                  f"({wall_n:.1f} s end to end); validation {last_n['val_loss']:.4f} nats/token, "
                  f"{last_n['val_per_char']:.4f} nats/char")


def bench_memory(steps: int = 20) -> None:
    """Peak memory numpy allocates while training (tracemalloc sees every array) against the bound:
    weights + gradients + two AdamW moments + the activations one batch's backward keeps (with the
    [B, H, T, T] temporaries of one layer's attention backward)."""
    import tracemalloc
    from model.train import loss_and_grads
    from model.train.optim import AdamW, clip_grad_norm
    for name, vocab, overrides in (("preset", 65, {}), ("wider (SmolLM2-135M's width, 4 layers)", 49152,
                                   dict(dim=576, heads=9, kv_heads=3, ffn=1536, batch=4, context=256))):
        from model.train.recipe import TrainSettings, init_weights, new_config
        s = TrainSettings(**overrides)
        cfg = new_config(s, vocab, None, None)
        tracemalloc.start()
        w = init_weights(cfg, np.random.default_rng(0))
        opt = AdamW(w)
        rng = np.random.default_rng(0)
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(steps):
            b = rng.integers(0, vocab, (s.batch, s.context + 1))
            loss, g = loss_and_grads(cfg, w, b[:, :-1], b[:, 1:])
            clip_grad_norm(g, 1.0)
            opt.step(w, g, 1e-3)
            del g
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        P = sum(a.size for a in w.values())
        N, D, F, E = s.batch * s.context, s.dim, s.ffn, s.dim // s.heads
        per_layer = N * (7 * D + 4 * F + (s.heads + 2 * s.kv_heads) * E) + s.batch * s.heads * s.context ** 2
        acts = (s.layers * per_layer + 2 * N * vocab + 3 * N * D) * 4            # + logits/softmax and the head's input
        acts += 4 * s.batch * s.heads * s.context ** 2 * 4                        # one layer's attention backward: dP, dS
        weights_and_state = 3 * P * 4                                             # weights, m, v (held before the step)
        bound = weights_and_state + P * 4 + acts                                   # + gradients + activations
        print(f"memory, {name}: peak {(base + (peak - base)) / 2**20:.1f} MB of arrays during {steps} steps; bound "
              f"weights + grads + 2 moments ({4 * P * 4 / 2**20:.1f} MB) + one batch's activations "
              f"({acts / 2**20:.1f} MB) = {bound / 2**20:.1f} MB: {peak / bound:.2f}x the bound")


def bench_smollm2(steps: int, batch: int, context: int) -> None:
    """Fine-tune SmolLM2-135M on a small text: seconds per step, peak memory."""
    from model.formats.loader import load
    from model.train import loss_and_grads
    from model.train.optim import AdamW, clip_grad_norm
    loaded = load("smollm2")
    cfg = loaded.model.cfg
    from model.train.runs import trainable_copy
    w = trainable_copy(cfg, {n: a for n, a in loaded.model.w.items()
                             if not (cfg.tie_word_embeddings and n == "lm_head.weight")})   # as train_model.py
    text = (ROOT / "README.md").read_text()
    ids = np.array(loaded.tokenizer.encode(text), np.int64)
    loaded = None                               # our copy is what trains (as train_model.py --init does)
    opt = AdamW(w)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(ids) - context - 1, batch)   # one batch, again and again: the loss must fall
    x = np.stack([ids[i:i + context] for i in starts])
    y = np.stack([ids[i + 1:i + context + 1] for i in starts])
    times, losses = [], []
    for _ in range(steps):
        t = time.perf_counter()
        loss, g = loss_and_grads(cfg, w, x, y)
        clip_grad_norm(g, 1.0)
        opt.step(w, g, 1e-4)
        times.append(time.perf_counter() - t)
        losses.append(loss)
    weights_mb = sum(a.nbytes for a in w.values()) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"SmolLM2-135M fine-tune, batch {batch} x {context} tokens: {np.median(times[1:] or times):.2f} s per step "
          f"(median of {steps}), loss on that batch {losses[0]:.3f} -> {losses[-1]:.3f}; peak RSS {peak:.0f} MB "
          f"({peak / weights_mb:.2f}x the float32 weights, {weights_mb:.0f} MB)")


def bench_lora(pairs: int, batch: int, context: int) -> None:
    """A LoRA step (rank 8, all projections) on SmolLM2, ours against PyTorch eager with peft on the same
    batch and threads, interleaved; the peak memory of ours."""
    import torch
    import transformers
    import peft
    from model.formats.loader import load
    from model.formats.smollm2 import smollm2_gguf
    from model.train.lora import PROJECTIONS, LoRA
    from model.train.optim import AdamW, clip_grad_norm
    torch.set_num_threads(2)
    path = smollm2_gguf()
    loaded = load(str(path))
    cfg = loaded.model.cfg
    from model.train.runs import trainable_copy
    w = trainable_copy(cfg, {n: a for n, a in loaded.model.w.items()
                             if not (cfg.tie_word_embeddings and n == "lm_head.weight")})   # as train_model.py
    ids = np.array(loaded.tokenizer.encode((ROOT / "README.md").read_text()), np.int64)
    loaded = None
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(ids) - context - 1, batch)
    x = np.stack([ids[i:i + context] for i in starts])
    y = np.stack([ids[i + 1:i + context + 1] for i in starts])
    lora = LoRA.new(w, 8, 16.0, PROJECTIONS, rng)
    opt = AdamW(lora.params, weight_decay=0.0)
    ref = peft.get_peft_model(transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                                                 dtype=torch.float32),
                              peft.LoraConfig(r=8, lora_alpha=16, target_modules=list(PROJECTIONS), lora_dropout=0.0))
    ref_opt = torch.optim.AdamW([p for p in ref.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def ours():                                      # as model/train/loop.py steps with LoRA
        from model.train import loss_and_grads
        tap, g = lora.taps(cfg)
        loss_and_grads(cfg, w, x, y, taps=tap)
        clip_grad_norm(g, 1.0)
        before = lora.snapshot()
        opt.step(lora.params, g, 1e-4)
        lora.move_weights(w, before)

    def theirs():
        ref_opt.zero_grad()
        logits = ref(tx).logits
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ty.reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_([p for p in ref.parameters() if p.requires_grad], 1.0)
        ref_opt.step()
    ratios = []
    for k in range(pairs + 1):                       # the first pair warms both up
        t = time.perf_counter()
        ours()
        mine = time.perf_counter() - t
        t = time.perf_counter()
        theirs()
        ref_s = time.perf_counter() - t
        if k:
            ratios.append(mine / ref_s)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"LoRA step, SmolLM2-135M, rank 8 on all projections, batch {batch} x {context}: ours / PyTorch+peft "
          f"{np.median(ratios):.2f}x the time (median of {pairs} interleaved pairs; goal <= 1.0, 0.7); "
          f"peak RSS of the process (both models) {peak:.0f} MB")


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", choices=["step", "preset", "memory", "smollm2", "lora"], default="step")
    p.add_argument("--pairs", type=int, default=15, help="interleaved pairs for --bench step (default 15)")
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "fixtures" / "tinyshakespeare.txt"),
                   help="training text (default ../shared/fixtures/tinyshakespeare.txt)")
    p.add_argument("--bpe", default="256,512,1024", help="--bench preset: bpe:N sizes to compare (default 256,512,1024)")
    p.add_argument("--steps", type=int, default=5, help="--bench smollm2: steps (default 5)")
    p.add_argument("--batch", type=int, default=4, help="--bench smollm2: batch (default 4)")
    p.add_argument("--context", type=int, default=128, help="--bench smollm2: tokens per sequence (default 128)")
    args = p.parse_args(argv)
    for name in ("pairs", "steps", "batch", "context"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be a positive integer")
    if args.bench == "preset" and not Path(args.corpus).is_file():
        p.error(f"--corpus {args.corpus}: no such file")
    try:
        sizes = [int(n) for n in args.bpe.split(",") if n]
    except ValueError:
        p.error(f"--bpe {args.bpe}: comma-separated integers")
    if args.bench == "step":
        p.require("--bench step (PyTorch eager as the reference)", ["torch", "transformers"], "oracle")
        bench_step(args.pairs)
    elif args.bench == "preset":
        bench_preset(args.corpus, sizes)
    elif args.bench == "memory":
        bench_memory()
    elif args.bench == "lora":
        p.require("--bench lora (PyTorch with peft as the reference)", ["torch", "transformers", "peft"], "oracle")
        bench_lora(args.pairs, args.batch, args.context if args.context != 128 else 256)
    else:
        bench_smollm2(args.steps, args.batch, args.context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
