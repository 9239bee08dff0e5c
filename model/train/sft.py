"""Instruction tuning data: examples through the model's chat template, the loss on the answers only.

An Alpaca-style example {"instruction", "input", "output"} becomes a conversation: the user's message
is the instruction, then a blank line and the input when there is one; the assistant's is the output.
JSONL of {"messages": [...]} conversations is read as it is. Each conversation is rendered by the
model's chat template; the targets of every position are IGNORE (-100, PyTorch's ignore_index)
except the assistant's tokens and the end-of-turn token that closes each of its turns.

A model without a chat template (Gemma 3 base, our own pretrained runs) gets PLAIN_TEMPLATE, saved
as its chat template so that generate.py --chat and the API use the format it was tuned on:

    ### Instruction:
    {the user's message}

    ### Response:
    {the answer}<eos>
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..chat import ChatFormat, NoChat, special_token_strings
from ..loss import IGNORE
from .data import DataError, cross_entropy_evaluation, cross_entropy_step

MAX_BYTES = 256 << 20
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n### Response:\n"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}\n\n"
    "{% endif %}{% endfor %}")


def chat_for_tuning(chat, tok) -> ChatFormat:
    """The model's own chat format, or the plain one (PLAIN_TEMPLATE) when it has none."""
    if not isinstance(chat, NoChat):
        return chat
    tokens = special_token_strings(tok)
    if "eos_token" not in tokens:
        raise DataError("sft", "the model's tokenizer has no end-of-sequence token to end an answer")
    return ChatFormat(PLAIN_TEMPLATE, tokens=tokens, source="the plain instruction format (model/train/sft.py)")


def read_conversations(path) -> list[list[dict]]:
    """Alpaca-style JSON (a list of {"instruction", "input", "output"}) or JSONL of {"messages": [...]};
    DataError naming the example on any problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError("sft", f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise DataError("sft", f"{path}: larger than {MAX_BYTES >> 20} MB")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError("sft", f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        rows = json.loads(text)
        where = lambda k: f"{path}: example {k}"                                        # noqa: E731
    except (ValueError, RecursionError):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (ValueError, RecursionError) as e:
                    raise DataError("sft", f"{path}:{n}: not JSON ({str(e)[:60]})") from None
        where = lambda k: f"{path}: example {k} (line {k + 1})"                          # noqa: E731
    if not isinstance(rows, list) or not rows:
        raise DataError("sft", f"{path}: expected a JSON list of examples (or JSONL), with at least one")
    return [conversation(row, where(k)) for k, row in enumerate(rows)]


def conversation(row, where: str) -> list[dict]:
    """One example as messages: Alpaca's fields, or its own "messages"."""
    if not isinstance(row, dict):
        raise DataError("sft", f"{where}: expected a JSON object")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                and isinstance(m.get("content"), str) for m in messages):
            raise DataError("sft", f"{where}: 'messages' must be a list of {{role, content}} "
                                   "(system, user or assistant)")
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            raise DataError("sft", f"{where}: no assistant message to learn from")
        return [dict(role=m["role"], content=m["content"]) for m in messages]
    for name in ("instruction", "output"):
        if not isinstance(row.get(name), str) or not row[name].strip():
            raise DataError("sft", f"{where}: '{name}' must be a non-empty string")
    extra = row.get("input", "")
    if not isinstance(extra, str):
        raise DataError("sft", f"{where}: 'input' must be a string")
    user = row["instruction"] + ("\n\n" + extra if extra.strip() else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]


def encode(chat: ChatFormat, tok, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(ids, targets) of a conversation: targets[t] is ids[t + 1] on the assistant's tokens (and the
    end-of-turn token closing each of its turns), IGNORE elsewhere; both of length len(ids) - 1."""
    ids = chat.encode(tok, messages, add_generation_prompt=False)
    learn = np.zeros(len(ids), bool)
    stops = tok.stop_ids | ({tok.eos_id} if tok.eos_id >= 0 else set())
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = chat.encode(tok, messages[:k], add_generation_prompt=True)
        upto = chat.encode(tok, messages[:k + 1], add_generation_prompt=False)
        if ids[:len(before)] != before or ids[:len(upto)] != upto:
            raise DataError("sft", "the chat template does not render a conversation as its turns in order")
        end = len(upto)
        for t in range(len(before), len(upto)):
            if ids[t] in stops:
                end = t + 1                   # the answer, and the token that ends its turn
                break
        learn[len(before):end] = True
    targets = [i if keep else IGNORE for i, keep in zip(ids[1:], learn[1:])]
    return ids[:-1], targets


@dataclass
class Examples:
    """Instruction examples as padded rows; the same interface as data.Split (batch, windows, ids, chars)."""
    inputs: list          # per example, its ids (without the last)
    targets: list         # per example, next ids or IGNORE
    prompts: list         # per example, the ids up to where the answer starts (a sample's prompt)
    pad: int

    @property
    def ids(self) -> np.ndarray:
        """The answers' tokens (what the loss counts), for fingerprints and per-token figures."""
        return np.array([t for ts in self.targets for t in ts if t != IGNORE], np.int32)

    @property
    def chars(self) -> int:
        return len(self.ids)                  # per character is not defined for answers: per token

    def _rows(self, picks, T: int) -> tuple[np.ndarray, np.ndarray]:
        width = min(T, max(len(self.inputs[k]) for k in picks))
        x = np.full((len(picks), width), self.pad, np.int64)
        y = np.full((len(picks), width), IGNORE, np.int64)
        for r, k in enumerate(picks):
            n = min(width, len(self.inputs[k]))
            x[r, :n], y[r, :n] = self.inputs[k][:n], self.targets[k][:n]
        return x, y

    def batch(self, B: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """B random examples, padded to the longest (at most T): inputs and targets [B, <=T]."""
        return self._rows(rng.integers(0, len(self.inputs), size=B), T)

    def windows(self, T: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every example (the first `limit`), padded to T: what an evaluation scores."""
        n = len(self.inputs) if limit is None else min(limit, len(self.inputs))
        return self._rows(list(range(n)), T)

    def sample_prompt(self, tok) -> list[int]:
        """The first example's prompt: a sample answers a held-out instruction."""
        return self.prompts[0]

    def step(self, cfg, weights: dict, batch, taps=None) -> tuple[float, dict]:
        """The answers' mean cross-entropy over a batch and its gradients (with LoRA's taps: theirs alone)."""
        return cross_entropy_step(cfg, weights, batch, taps)

    def evaluate(self, cfg, weights: dict, T: int, B: int, limit: int | None) -> dict:
        """Mean loss over the answers' tokens of the examples (the first `limit`)."""
        return cross_entropy_evaluation(self, cfg, weights, T, B, limit)


def fit_and_split(items: list, encode_item, length, context: int, val_fraction: float, seed: int, what: str,
                  option: str, notice=print) -> tuple[list, list]:
    """Encode each item, skip those longer than the context (counted aloud), shuffle by the seed and hold
    out `val_fraction`: (train, held out) encoded items. Instruction examples and preference pairs alike."""
    rows, skipped = [], 0
    for item in items:
        row = encode_item(item)
        if length(row) > context:
            skipped += 1
            continue
        rows.append(row)
    if skipped:
        notice(f"note: skipped {skipped} of {len(items)} {what} longer than the context of {context} tokens")
    if len(rows) < 2:
        raise DataError(option, f"{len(rows)} {what} fit the context of {context}: need at least 2 (train, held out)")
    order = np.random.default_rng([seed, 3]).permutation(len(rows))
    held = max(1, int(round(len(rows) * val_fraction)))
    return [rows[k] for k in order[held:]], [rows[k] for k in order[:held]]


def examples(chat: ChatFormat, tok, conversations: list[list[dict]], context: int, val_fraction: float,
             seed: int, notice=print) -> tuple[Examples, Examples]:
    """Train and held-out examples; those longer than the context are skipped, and counted aloud."""
    def encode_one(messages):
        ids, targets = encode(chat, tok, messages)
        first = next(k for k, m in enumerate(messages) if m["role"] == "assistant")
        return ids, targets, chat.encode(tok, messages[:first], add_generation_prompt=True)
    train, held = fit_and_split(conversations, encode_one, lambda row: len(row[0]), context, val_fraction, seed,
                                "examples", "sft", notice)
    pad = tok.eos_id if tok.eos_id >= 0 else 0
    part = lambda rows: Examples(*[[row[j] for row in rows] for j in range(3)], pad=pad)   # noqa: E731
    return part(train), part(held)
