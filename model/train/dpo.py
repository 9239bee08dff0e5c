"""Direct Preference Optimization: raise the chosen answer over the rejected one, relative to the start.

For a prompt x with a chosen answer y_w and a rejected one y_l, with log p summed over an answer's
tokens (and its end-of-turn token) under the model being tuned (pi) and under the model it started
from (ref, computed once per pair before the first step):
    z = beta * [ (log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)) ]
    L = mean over pairs of -log sigmoid(z)
    dL/d(log pi(y_w|x)) = -beta sigmoid(-z) / P,   dL/d(log pi(y_l|x)) = +beta sigmoid(-z) / P
so the gradient is the cross-entropy's with each answer token weighted by its pair's coefficient
(+beta sigmoid(-z)/P on the chosen tokens, -beta sigmoid(-z)/P on the rejected: loss_and_grads'
token_weights). The implicit rewards are beta (log pi - log ref); their margin's sign is the pair's
accuracy. With LoRA the reference is the start, adapters off (B = 0): no second copy of the weights.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..loss import IGNORE
from .data import DataError
from .grads import loss_and_grads, sequence_logprobs
from .sft import MAX_BYTES, conversation, encode, fit_and_split


def read_pairs(path) -> list[tuple[list[dict], str, str]]:
    """(prompt messages, chosen, rejected) per example of a JSON list with instruction / input / chosen /
    rejected; DataError naming the example on any problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError("dpo", f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise DataError("dpo", f"{path}: larger than {MAX_BYTES >> 20} MB")
    try:
        rows = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise DataError("dpo", f"{path}: not a JSON list of preference pairs ({str(e)[:60]})") from None
    if not isinstance(rows, list) or not rows:
        raise DataError("dpo", f"{path}: expected a JSON list of pairs, with at least one")
    out = []
    for k, row in enumerate(rows):
        where = f"{path}: example {k}"
        if not isinstance(row, dict):
            raise DataError("dpo", f"{where}: expected a JSON object")
        for name in ("chosen", "rejected"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataError("dpo", f"{where}: '{name}' must be a non-empty string (a preference pair)")
        prompt = conversation({**row, "output": row["chosen"]}, where)[:-1]
        out.append((prompt, row["chosen"], row["rejected"]))
    return out


@dataclass
class Pairs:
    """Preference pairs as padded rows, with the reference's log-probabilities of both answers."""
    chosen: list          # per pair, (ids, targets)
    rejected: list
    ref: np.ndarray       # [P, 2] log ref(y_w|x), log ref(y_l|x)
    beta: float
    pad: int
    prompts: list = None  # per pair, the prompt's ids (a sample answers the first held-out one)

    @property
    def ids(self) -> np.ndarray:
        return np.array([t for _, ts in self.chosen + self.rejected for t in ts if t != IGNORE], np.int32)

    @property
    def chars(self) -> int:
        return len(self.ids)

    def rows(self, picks, T: int) -> tuple[np.ndarray, np.ndarray]:
        """The chosen answers of `picks`, then their rejected ones: inputs, targets [2 len(picks), <=T]."""
        seqs = [self.chosen[k] for k in picks] + [self.rejected[k] for k in picks]
        width = min(T, max(len(ids) for ids, _ in seqs))
        x = np.full((len(seqs), width), self.pad, np.int64)
        y = np.full((len(seqs), width), IGNORE, np.int64)
        for r, (ids, targets) in enumerate(seqs):
            n = min(width, len(ids))
            x[r, :n], y[r, :n] = ids[:n], targets[:n]
        return x, y

    def batch(self, B: int, T: int, rng: np.random.Generator):
        """B random pairs: (pair indices, inputs, targets)."""
        picks = rng.integers(0, len(self.chosen), size=B)
        return (picks, *self.rows(picks, T))

    def step(self, cfg, weights: dict, batch, taps=None) -> tuple[float, dict]:
        """The DPO loss of a batch of pairs and dL/dW (the cross-entropy's, tokens weighted by their pair)."""
        picks, x, y = batch
        logs = self.measure(cfg, weights, picks, x, y)
        P = len(picks)
        coef = self.beta / (1 + np.exp(logs["z"])) / P                      # beta sigmoid(-z) / P, per pair
        weight = np.concatenate([coef, -coef])[:, None] * (y != IGNORE)      # [2P, T]
        _, grads = loss_and_grads(cfg, weights, x, y, token_weights=weight, taps=taps)
        return logs["loss"], grads

    def measure(self, cfg, weights: dict, picks, x, y) -> dict:
        """The DPO loss, implicit rewards, margins and accuracy of the pairs `picks` (rows x, y)."""
        lp = sequence_logprobs(cfg, weights, x, y)                           # [2P]
        P = len(picks)
        reward_w = self.beta * (lp[:P] - self.ref[picks, 0])
        reward_l = self.beta * (lp[P:] - self.ref[picks, 1])
        z = reward_w - reward_l
        return {"loss": float(np.mean(np.logaddexp(0, -z))), "z": z, "chosen": float(reward_w.mean()),
                "rejected": float(reward_l.mean()), "margin": float(z.mean()), "accuracy": float((z > 0).mean())}

    def evaluate(self, cfg, weights: dict, T: int, B: int, limit: int | None) -> dict:
        """Mean DPO loss over the pairs (the first `limit`), with the rewards' margin and accuracy."""
        n = len(self.chosen) if limit is None else min(limit, len(self.chosen))
        parts = [self.measure(cfg, weights, np.arange(a, min(n, a + B)), *self.rows(range(a, min(n, a + B)), T))
                 for a in range(0, n, B)]
        sizes = [min(B, n - a) for a in range(0, n, B)]
        mean = lambda key: float(np.average([p[key] for p in parts], weights=sizes))   # noqa: E731
        return {"loss": mean("loss"), "per_char": mean("loss"), "windows": n, "chosen": mean("chosen"),
                "rejected": mean("rejected"), "margin": mean("margin"), "accuracy": mean("accuracy")}

    def sample_prompt(self, tok) -> list[int]:
        """The first held-out pair's prompt: a sample answers it."""
        return self.prompts[0]


def pairs(chat, tok, cfg, weights: dict, rows, context: int, val_fraction: float, beta: float, seed: int,
          batch: int = 8, notice=print, reference: tuple | None = None) -> tuple[Pairs, Pairs]:
    """Train and held-out pairs, the reference's log-probabilities computed once with `weights` (the start),
    or given (`reference`: train's and held-out's [P, 2], as a resumed run saved them)."""
    if not beta > 0:
        raise DataError("beta", f"{beta}: must be positive")
    def encode_one(row):
        prompt, chosen, rejected = row
        return (encode(chat, tok, prompt + [{"role": "assistant", "content": chosen}]),
                encode(chat, tok, prompt + [{"role": "assistant", "content": rejected}]),
                chat.encode(tok, prompt, add_generation_prompt=True))
    train, held = fit_and_split(rows, encode_one, lambda e: max(len(e[0][0]), len(e[1][0])), context, val_fraction,
                                seed, "pairs", "dpo", notice)
    pad = tok.eos_id if tok.eos_id >= 0 else 0

    def part(encoded, saved=None):
        p = Pairs([e[0] for e in encoded], [e[1] for e in encoded], np.zeros((len(encoded), 2)), beta, pad,
                  [e[2] for e in encoded])
        if saved is not None:
            if np.shape(saved) != p.ref.shape:
                raise DataError("dpo", f"the saved reference has {len(saved)} pairs, the data {len(encoded)}")
            p.ref[...] = saved
            return p
        for a in range(0, len(encoded), batch):                              # the reference, once
            picks = np.arange(a, min(len(encoded), a + batch))
            lp = sequence_logprobs(cfg, weights, *p.rows(picks, context))
            p.ref[picks, 0], p.ref[picks, 1] = lp[:len(picks)], lp[len(picks):]
        return p
    saved = reference or (None, None)
    return part(train, saved[0]), part(held, saved[1])
