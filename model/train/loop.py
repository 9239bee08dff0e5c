"""The training loop: one progress line, evaluations (nats per token and per character, a
sample), checkpoints that are a loadable model folder, resume bit for bit, Ctrl-C, NaN.

A checkpoint is the Hugging Face folder (model/train/export.py) plus optimizer.safetensors (the
AdamW moments) and trainer_state.json (step, settings, the batch generator's state), written
last, so a folder with a trainer_state.json is complete. log.jsonl gets one line per evaluation.
"""
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from files.atomic import write_atomic
from files.safetensors import save_safetensors

from ..config import LlamaConfig
from ..llama import Llama
from ..sampling import sample
from .data import Split
from .export import write_folder
from .optim import AdamW, clip_grad_norm, lr_at
from .recipe import TrainSettings

STATE = "trainer_state.json"
FORMAT = "tinyllama-from-scratch train v1"


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the folder keeps the last good checkpoint."""


class Interrupted(RuntimeError):
    """Ctrl-C: a checkpoint was saved at the step named."""


@dataclass
class TrainingRun:
    """Everything a run holds: the model, its optimizer, the data, the batch generator, where it writes."""
    settings: TrainSettings
    cfg: LlamaConfig
    weights: dict
    opt: AdamW
    tok: object
    tok_files: dict
    train: Split
    val: Split
    out: Path
    rng: np.random.Generator
    step: int = 0
    extra: dict = field(default_factory=dict)   # kept in trainer_state.json (corpus, init spec)
    made: list = field(default_factory=list)    # folders this run created (removed if it fails before a checkpoint)
    lora: object = None                         # model/train/lora.py LoRA: only its adapters are trained

    @property
    def trained(self) -> dict:
        """What the optimizer updates: the adapters with LoRA, else every weight."""
        return self.lora.params if self.lora is not None else self.weights


def evaluate(run: TrainingRun, split, limit: int | None) -> dict:
    """A split's mean loss: nats per token and per character (preference pairs: the DPO loss and rewards)."""
    return split.evaluate(run.cfg, run.weights, run.settings.context, run.settings.batch, limit)


def sample_text(run: TrainingRun, n: int = 100) -> tuple[str, str]:
    """n tokens sampled (temperature 0.8, top-k 200: nanoGPT's sample.py) after the validation split's sample
    prompt (a newline, as nanoGPT's; for instruction tuning, the first held-out instruction)."""
    model = Llama(run.cfg, run.weights)
    rng = np.random.default_rng([run.settings.seed, 2, run.step])   # its own stream: training never sees it
    prompt = list(run.val.sample_prompt(run.tok))
    model.new_cache(run.cfg.max_position_embeddings)
    ids, logits = list(prompt), model.forward(prompt)
    for _ in range(min(n, run.cfg.max_position_embeddings - len(prompt))):
        ids.append(sample(logits, rng, temperature=0.8, top_k=200, top_p=1.0))
        if ids[-1] in run.tok.stop_ids:
            break
        logits = model.forward(ids[-1:])
    shown = ids if len(prompt) == 1 else ids[len(prompt):]     # an instruction's sample: the answer alone
    start = (f"after {json.dumps(run.tok.decode(prompt))}" if len(prompt) == 1
             else "answering the first held-out instruction")
    return start, run.tok.decode([i for i in shown if not run.tok.is_control(i)])


def save_checkpoint(run: TrainingRun) -> None:
    """The whole state at run.step; trainer_state.json last (its presence means complete)."""
    write_folder(run.out, run.cfg, run.weights, run.tok, run.tok_files, run.step)   # with LoRA: merged
    if run.lora is not None:
        run.lora.peft_files(run.out / "adapter", run.extra.get("init", ""))
    moments = {f"m.{n}": m for n, m in run.opt.m.items()} | {f"v.{n}": v for n, v in run.opt.v.items()}
    save_safetensors(run.out / "optimizer.safetensors", moments, "F32", {"step": str(run.step), "t": str(run.opt.t)})
    state = {"format": FORMAT, "step": run.step, "adam_t": run.opt.t, "settings": run.settings.as_dict(),
             "rng": run.rng.bit_generator.state, **run.extra}
    write_atomic(run.out / STATE, json.dumps(state, indent=1).encode())


def log_step(run: TrainingRun, entry: dict) -> None:
    """Append one step's batch loss to steps.jsonl (loss.png draws it under the evaluations)."""
    with open(run.out / "steps.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def log_eval(run: TrainingRun, entry: dict) -> None:
    """Append one evaluation to log.jsonl and redraw loss.png."""
    with open(run.out / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    from .plot import loss_png
    loss_png(run.out / "log.jsonl", run.out / "loss.png")


def clock(seconds: float) -> str:
    """h:mm:ss"""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class TrainingProgress:
    """One line on a terminal, redrawn each step; every 10% of the run as plain lines otherwise."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.tty = stream.isatty()
        self.every = max(1, total // 10)
        self.rate = None

    def step(self, step: int, loss: float, lr: float, tokens: int, seconds: float, elapsed: float, start: int):
        rate = tokens / max(seconds, 1e-9)
        self.rate = rate if self.rate is None else 0.9 * self.rate + 0.1 * rate
        eta = (self.total - step) * tokens / self.rate
        line = (f"step {step}/{self.total} | loss {loss:.4f} | lr {lr:.2e} | {self.rate / 1000:.1f}k tok/s | "
                f"{clock(elapsed)} elapsed, ETA {clock(eta)}")
        if self.tty:
            self.stream.write("\r\033[K" + line)
        elif step % self.every == 0 or step == self.total or step == start + 1:
            self.stream.write(line + "\n")
        self.stream.flush()

    def say(self, text: str):
        """A line of its own (the progress line is redrawn after it)."""
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()


def evaluation(run: TrainingRun, progress: TrainingProgress, elapsed: float, final: bool = False) -> dict:
    """Train and validation loss (estimates, or the whole validation split at the end), a sample, logged."""
    limit = run.settings.eval_windows
    tr, va = evaluate(run, run.train, limit), evaluate(run, run.val, None if final else limit)
    start, text = sample_text(run)
    entry = {"step": run.step, "train_loss": tr["loss"], "val_loss": va["loss"], "train_per_char": tr["per_char"],
             "val_per_char": va["per_char"], "val_windows": va["windows"], "whole_val": final,
             "lr": lr_at(max(run.step - 1, 0), **schedule(run.settings)), "elapsed_s": round(elapsed, 3),
             "train_s": round(run.extra.get("train_s", 0.0), 3),
             "tokens": run.step * run.settings.batch * run.settings.context, "sample": text}
    progress.say(f"step {run.step}: train {tr['loss']:.4f} nats/token ({tr['per_char']:.4f}/char), "
                 f"val {va['loss']:.4f} ({va['per_char']:.4f}/char){' on the whole validation split' if final else ''}")
    if "accuracy" in va:                        # preference pairs: the held-out rewards
        entry.update({f"val_{k}": va[k] for k in ("chosen", "rejected", "margin", "accuracy")})
        progress.say(f"  held-out pairs: reward chosen {va['chosen']:+.4f}, rejected {va['rejected']:+.4f}, "
                     f"margin {va['margin']:+.4f}, accuracy {100 * va['accuracy']:.1f}%")
    progress.say(f"  sample ({start}; temperature 0.8, top-k 200): " + json.dumps(text[:160], ensure_ascii=False))
    log_eval(run, entry)
    return entry


def schedule(s: TrainSettings) -> dict:
    """The learning-rate schedule's arguments."""
    return dict(lr=s.lr, min_lr=s.min_lr, warmup=s.warmup, steps=s.steps)


def train(run: TrainingRun, *, progress: TrainingProgress | None = None, evaluate_first: bool = True) -> dict:
    """Train from run.step to settings.steps; raise Interrupted (Ctrl-C) or Diverged (NaN) after saving."""
    s = run.settings
    progress = progress or TrainingProgress(s.steps)
    stop = []
    old = signal.signal(signal.SIGINT, lambda *_: stop.append(True)) if _main_thread() else None
    began, start = time.perf_counter(), run.step
    try:
        if run.step == 0 and evaluate_first:
            save_checkpoint(run)                # a complete folder before the first step: NaN leaves this one
            evaluation(run, progress, 0.0)
        while run.step < s.steps and not stop:
            t = time.perf_counter()
            lr = lr_at(run.step, **schedule(s))
            batch = run.train.batch(s.batch, s.context, run.rng)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # checked just below, by name
                if run.lora is None:
                    loss, grads = run.train.step(run.cfg, run.weights, batch)
                else:                                      # the weights frozen: dA, dB from the taps alone
                    tap, grads = run.lora.taps(run.cfg)
                    loss, _ = run.train.step(run.cfg, run.weights, batch, taps=tap)
                norm = clip_grad_norm(grads, s.clip)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                what = f"the loss became {loss}" if not math.isfinite(loss) else \
                    f"the gradient norm became {norm} (the gradients overflowed; the loss was {loss:.4f})"
                raise Diverged(f"{what} at step {run.step + 1} (learning rate {lr:.3g}); "
                               f"{run.out} keeps the checkpoint of step {last_saved(run)}")
            before = run.lora.snapshot() if run.lora is not None else None
            run.opt.step(run.trained, grads, lr)
            if run.lora is not None:
                run.lora.move_weights(run.weights, before)  # W += s (B' A' - B A): W0 + s B' A' for the next step
            run.step += 1
            now = time.perf_counter()
            run.extra["train_s"] = run.extra.get("train_s", 0.0) + now - t     # the steps alone, for benchmarks
            progress.step(run.step, loss, lr, s.batch * s.context, now - t, now - began, start)
            log_step(run, {"step": run.step, "loss": float(loss), "lr": lr, "grad_norm": float(norm)})
            if run.step % s.eval_every == 0 and run.step < s.steps:
                evaluation(run, progress, now - began)
                save_checkpoint(run)
        if stop:
            save_checkpoint(run)
            raise Interrupted(f"stopped at step {run.step}; checkpoint saved in {run.out}")
        final = evaluation(run, progress, time.perf_counter() - began, final=True)
        save_checkpoint(run)
        return final
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def last_saved(run: TrainingRun) -> int:
    """The step of the checkpoint in the folder."""
    try:
        return json.loads((run.out / STATE).read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()
