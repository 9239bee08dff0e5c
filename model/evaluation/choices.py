"""Multiple choice scored as llama.cpp (HellaSwag) and llm.c do it.

For an item with context c and choices e_1..e_n:
    sequence k = tokenize(c + " " + e_k)      (BOS first when the model adds one)
    P = the longest prefix all n sequences share; the tokens after it are choice k's
    logprob_sum[k]  = sum of log p(token | everything before it) over choice k's tokens
    logprob_mean[k] = logprob_sum[k] / (number of choice k's tokens)
    pred = argmax logprob_sum (llm.c's acc),  pred_norm = argmax logprob_mean (llama.cpp's acc_norm)
The n choices run in one pass over their shared prefix (model/llama.py forward_packed): each
choice's tokens see the prefix and their own earlier tokens, at the positions they would have.
"""
from dataclasses import dataclass

import numpy as np

from .datasets import DataError, Item, jsonl_rows
from .perplexity import token_nll

Z95 = 1.95996398454


@dataclass
class Scored:
    """One item's result: the label, both predictions, and per choice the sum and mean log-probability."""
    item: int
    label: int
    pred: int
    pred_norm: int
    logprob_sum: list
    logprob_mean: list
    tokens: list          # per choice, the scored tokens' ids
    token_logprobs: list  # per choice, each scored token's log-probability (what the page draws)


def tokenize_item(tok, item: Item) -> tuple[list[list[int]], int]:
    """The choices' token sequences and the length of their common prefix."""
    seqs = [tok.encode(item.context + " " + choice, bos=tok.add_bos) for choice in item.choices]
    prefix = 0
    while all(prefix < len(s) - 1 for s in seqs) and len({s[prefix] for s in seqs}) == 1:
        prefix += 1                          # subtle: every choice keeps at least one token to score
    return seqs, prefix


def packed(seqs: list[list[int]], prefix: int):
    """The packed pass: tokens, positions, the hidden mask [T, T], and which outputs score which choice."""
    tokens, positions, branch = list(seqs[0][:prefix]), list(range(prefix)), [-1] * prefix
    for k, s in enumerate(seqs):
        tokens += s[prefix:]
        positions += range(prefix, len(s))
        branch += [k] * (len(s) - prefix)
    positions, branch = np.array(positions), np.array(branch)
    seen = (branch[None, :] == -1) | (branch[None, :] == branch[:, None])       # the prefix, or one's own choice
    hidden = ~(seen & (positions[None, :] <= positions[:, None]))               # [T, T]
    outputs, targets, owner, at = [], [], [], prefix
    for k, s in enumerate(seqs):
        # choice k's first token is predicted at the prefix's last position, the rest from its own tokens
        rows = [prefix - 1] + list(range(at, at + len(s) - prefix - 1))
        outputs += rows
        targets += s[prefix:]
        owner += [k] * len(rows)
        at += len(s) - prefix
    return np.array(tokens), positions, hidden, np.array(outputs), np.array(targets), np.array(owner)


def score_item(model, tok, item: Item, index: int) -> Scored:
    """Score one item's choices in one packed pass."""
    seqs, prefix = tokenize_item(tok, item)
    if prefix == 0:
        raise DataError("data", f"item {index}: the choices share no first token to start from")
    longest = prefix + sum(len(s) - prefix for s in seqs)
    if max(len(s) for s in seqs) > model.cfg.max_position_embeddings:
        raise DataError("data", f"item {index}: {max(len(s) for s in seqs)} tokens do not fit the context of "
                                f"{model.cfg.max_position_embeddings}")
    tokens, positions, hidden, outputs, targets, owner = packed(seqs, prefix)
    assert len(tokens) == longest
    logprobs = -token_nll(model.forward_packed(tokens, positions, hidden, outputs), targets)   # [O]
    sums = [float(logprobs[owner == k].sum()) for k in range(len(seqs))]
    means = [s / int((owner == k).sum()) for k, s in enumerate(sums)]
    return Scored(index, item.label, int(np.argmax(sums)), int(np.argmax(means)), sums, means,
                  [targets[owner == k].tolist() for k in range(len(seqs))],
                  [logprobs[owner == k].tolist() for k in range(len(seqs))])


def as_line(s: Scored, model: str) -> dict:
    """One item's line of --out: item, label, pred, pred_norm, logprob_sum, logprob_mean, and the model's name."""
    return {"item": s.item, "label": s.label, "pred": s.pred, "pred_norm": s.pred_norm,
            "logprob_sum": s.logprob_sum, "logprob_mean": s.logprob_mean, "model": model}


def read_scored(path, items: list[Item], model: str) -> list[Scored]:
    """The items an earlier run of this model wrote to `path` (as_line), to go on after them: lines for
    items 0, 1, 2, ... in order, each checked against this file's item (label, number of choices)."""
    done = []
    for n, row in jsonl_rows(path, "out", empty_ok=True):
        k = len(done)
        if row.get("item") != k or isinstance(row.get("item"), bool) or k >= len(items):
            raise DataError("out", f"{path}:{n}: expected item {k} (the items in file order)"
                                   + ("" if k < len(items) else f"; the data has {len(items)}"))
        if row.get("model") != model:
            raise DataError("out", f"{path}:{n}: scored by {str(row.get('model'))[:80]!r}, not {model!r}")
        item, sums, means = items[k], row.get("logprob_sum"), row.get("logprob_mean")
        if row.get("label") != item.label:
            raise DataError("out", f"{path}:{n}: label {row.get('label')!r}, but item {k} of the data has {item.label}")
        for name, v in (("logprob_sum", sums), ("logprob_mean", means)):
            if (not isinstance(v, list) or len(v) != len(item.choices)
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v)):
                raise DataError("out", f"{path}:{n}: '{name}' must be {len(item.choices)} finite numbers")
        done.append(Scored(k, item.label, int(np.argmax(sums)), int(np.argmax(means)), sums, means, [], []))
    return done


def wilson(correct: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of an accuracy (llama.cpp prints it beside acc_norm)."""
    if n == 0:
        return 0.0, 1.0
    p, z = correct / n, Z95 * Z95 / n
    half = z * np.sqrt(n * (4 * p * (1 - p) + z)) / (2 * Z95)
    return float((p + z / 2 - half) / (1 + z)), float((p + z / 2 + half) / (1 + z))


@dataclass
class Tally:
    """The running score of a multiple-choice evaluation."""
    items: int = 0
    correct: int = 0          # by sum (acc)
    correct_norm: int = 0     # by mean (acc_norm)

    def add(self, s: Scored) -> None:
        self.items += 1
        self.correct += s.pred == s.label
        self.correct_norm += s.pred_norm == s.label

    def summary(self) -> dict:
        """acc and acc_norm with their 95% Wilson intervals."""
        n = max(self.items, 1)
        return {"items": self.items, "acc": self.correct / n, "acc_interval": wilson(self.correct, self.items),
                "acc_norm": self.correct_norm / n, "acc_norm_interval": wilson(self.correct_norm, self.items)}


def score_items(model, tok, items: list[Item], *, limit: int | None = None, start: int = 0):
    """Score the items in file order (the first `limit`, from index `start`); yields each Scored as it is done."""
    for index in range(start, min(len(items), limit or len(items))):
        yield score_item(model, tok, items[index], index)
