"""The data: a corpus -> a tokenizer -> ids, nanoGPT's split (first 90% trains, last 10% validates),
random batches for training and non-overlapping windows for evaluation."""
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpe.bytes_trainer import GPT4_PATTERN, RegexWords, train_bytes
from bpe.chars import CharTokenizer

from ..errors import OptionError

MAX_CORPUS_BYTES = 1 << 31  # 2 GB: the ids of a larger text do not fit our int32 arrays comfortably
TRAIN_FRACTION = 0.9


class DataError(OptionError):
    """A corpus or tokenizer choice we cannot train on, with the file or value named."""


def read_corpus(path) -> str:
    """The corpus as text; DataError for a missing, empty, oversized or non-UTF-8 file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("input", f"{path}: " + ("is a directory" if path.is_dir() else "no such file"))
    size = path.stat().st_size
    if size > MAX_CORPUS_BYTES:
        raise DataError("input", f"{path}: {size} bytes is more than the {MAX_CORPUS_BYTES} we read")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError("input", f"{path}: not UTF-8 text (byte {e.start})") from None
    if not text:
        raise DataError("input", f"{path}: the corpus is empty")
    return text


def split_text(text: str) -> tuple[str, str]:
    """nanoGPT's split: the first 90% of the characters train, the last 10% validate."""
    n = int(len(text) * TRAIN_FRACTION)
    return text[:n], text[n:]


def train_bpe(train_text: str, vocab_size: int, notice=print):
    """Our byte-level BPE trainer (bpe/bytes_trainer.py, GPT-4's pattern) on the training split.

    A vocabulary larger than the text supports stops where no pair is left, with a notice.
    """
    if vocab_size < 256:
        raise DataError("tokenizer", f"bpe:{vocab_size}: a byte-level vocabulary needs at least 256 ids")
    split = RegexWords(GPT4_PATTERN)
    words = Counter(w for line in train_text.split("\n") for w in split(line))
    tok = train_bytes(words, vocab_size)
    if tok.vocab_size < vocab_size:
        notice(f"note: the training split supports only {tok.vocab_size} tokens (no pair left to merge); "
               f"using {tok.vocab_size}, not bpe:{vocab_size}")
    return tok


def make_tokenizer(spec: str, train_text: str, full_text: str, notice=print):
    """`char` (the corpus's sorted characters, as nanoGPT), `bpe:N` (ours, on the training split),
    or a tokenizer file of any kind bpe/ reads."""
    if spec == "char":
        return CharTokenizer.from_text(full_text)
    if spec.startswith("bpe:"):
        n = spec[4:]
        if not (n.isascii() and n.isdigit()):
            raise DataError("tokenizer", f"{spec}: N must be a positive integer")
        return train_bpe(train_text, int(n), notice)
    path = Path(spec)
    if not path.is_file():
        raise DataError("tokenizer", f"{spec}: neither char, bpe:N nor a tokenizer file")
    from bpe.files import load_tokenizer
    from bpe.model_file import ModelFileError
    try:
        return load_tokenizer(path)
    except ModelFileError as e:
        raise DataError("tokenizer", str(e)) from None


@dataclass
class Split:
    """One split's ids and how many characters of text they stand for (for nats per character)."""
    ids: np.ndarray      # [n] int32
    chars: int

    def windows(self, T: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Non-overlapping windows of the context: inputs ids[i:i+T], targets ids[i+1:i+T+1], i = 0, T, 2T...

        With `limit`, that many windows spread evenly over the split (a quick estimate).
        """
        n = (len(self.ids) - 1) // T
        starts = np.arange(n) * T
        if limit is not None and limit < n:
            starts = starts[np.linspace(0, n - 1, limit).astype(np.int64)]
        idx = starts[:, None] + np.arange(T)[None, :]                     # [W, T]
        return self.ids[idx], self.ids[idx + 1]

    def batch(self, B: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """B random windows of this split (the module's `batch`)."""
        return batch(self, B, T, rng)

    def sample_prompt(self, tok) -> list[int]:
        """Where a sample starts: a newline when it is one token (nanoGPT's sample.py starts there), else the
        split's first token."""
        newline = tok.encode("\n")
        return list(newline) if len(newline) == 1 and tok.decode(newline) == "\n" else [int(self.ids[0])]

    def step(self, cfg, weights: dict, batch, taps=None) -> tuple[float, dict]:
        """The loss of a batch of windows and its gradients (with LoRA's taps: theirs alone)."""
        return cross_entropy_step(cfg, weights, batch, taps)

    def evaluate(self, cfg, weights: dict, T: int, B: int, limit: int | None) -> dict:
        """Mean loss over this split's windows (`limit` of them, spread evenly)."""
        return cross_entropy_evaluation(self, cfg, weights, T, B, limit)


def encode_split(tok, text: str) -> Split:
    """A split's text as ids (int32), BOS first when the tokenizer's settings add one."""
    ids = tok.encode(text, bos=getattr(tok, "add_bos", False))
    return Split(np.asarray(ids, dtype=np.int32), len(text))


def batch(split: Split, B: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """B random windows (nanoGPT's get_batch): inputs ids[i:i+T], targets shifted by one   -> [B, T] each."""
    starts = rng.integers(0, len(split.ids) - T, size=B)                 # i + T < len: the target exists
    idx = starts[:, None] + np.arange(T)[None, :]                         # [B, T]
    return split.ids[idx].astype(np.int64), split.ids[idx + 1].astype(np.int64)


def check_splits(train: Split, val: Split, T: int) -> None:
    """Both splits must hold at least one window of the context (plus its shifted target)."""
    if len(train.ids) <= T:
        raise DataError("context", f"{T}: the training split has {len(train.ids)} tokens, fewer than one window "
                                   "of the context plus one: use a longer corpus or a shorter context")
    if len(val.ids) <= T:
        raise DataError("context", f"{T}: the validation split (the last 10%) has {len(val.ids)} tokens, too few "
                                   "to evaluate one window of the context: use a longer corpus or a shorter context")


def cross_entropy_step(cfg, weights: dict, batch, taps=None) -> tuple[float, dict]:
    """A pretraining or instruction batch (inputs, targets): the mean cross-entropy and its gradients."""
    from .grads import loss_and_grads
    x, y = batch
    return loss_and_grads(cfg, weights, x, y, taps=taps)


def cross_entropy_evaluation(split, cfg, weights: dict, T: int, B: int, limit: int | None) -> dict:
    """Mean loss over a split's windows (or examples): nats per counted token and per character."""
    from ..loss import IGNORE
    from .grads import forward_loss
    inputs, targets = split.windows(T, limit)
    total, counted = 0.0, 0                         # B windows per forward: a training batch's worth of memory
    for i in range(0, len(inputs), B):
        x, y = inputs[i:i + B].astype(np.int64), targets[i:i + B].astype(np.int64)
        n = int((y != IGNORE).sum())               # instruction tuning counts the answers' tokens only
        if n:
            total += forward_loss(cfg, weights, x, y, keep=False)[0] * n
            counted += n
    per_token = total / max(counted, 1)
    chars_per_token = split.chars / max(len(split.ids), 1)
    return {"loss": per_token, "per_char": per_token / chars_per_token, "windows": len(inputs)}
