"""Train BPE vocabularies in two styles, from text files streamed line by line.

- `sentencepiece` (Llama / TinyLlama): text is normalized as SentencePiece does ("▁" for spaces,
  a dummy prefix), split into words at "▁", and merged character by character. Pieces never
  cross a word boundary, mix scripts, hold a digit next to anything, or exceed 16 characters.
  Rare characters (beyond `character_coverage`) are left to byte fallback. Exported as a
  SentencePiece `.model`: <unk> <s> </s>, 256 byte pieces, merged pieces (score -rank), characters.
- `bytes` (GPT): UTF-8 bytes, pre-split by a regex (GPT-4's by default), 256 base tokens.
"""
import os
import re
import sys
import unicodedata
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor

from .merges import learn_merges
from .model_file import BYTE, CONTROL, NORMAL, UNKNOWN, ModelProto
from .sentencepiece import SPACE, SentencePieceTokenizer

BLOCK_BYTES = 4 << 20        # words are counted in blocks of about this many bytes
PARALLEL_BYTES = 64 << 20    # inputs larger than this are counted on all cores
WORDS_RE = re.compile(f"{SPACE}*[^{SPACE}]+|{SPACE}+")  # SentencePiece's SplitIntoWords: "▁▁word" stays one word


class TrainError(ValueError):
    """Raised for training input that cannot give the requested vocabulary (`option`: as ModelFileError's)."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


# --- streaming word counts ---------------------------------------------------------------------
def read_blocks(paths, block_bytes: int = BLOCK_BYTES):
    """Yield lists of lines, about `block_bytes` at a time, from text files.

    Lines end at "\n" only (a lone "\r" stays in its line), as in spm_train and our encoder;
    bytes that are not UTF-8 become U+FFFD.
    """
    block, size = [], 0
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                line = raw[:-1] if raw.endswith(b"\n") else raw
                line = line.decode("utf-8", errors="replace")
                block.append(line)
                size += len(line) + 1
                if size >= block_bytes:
                    yield block
                    block, size = [], 0
    if block:
        yield block


def count_words(paths, split_words, *, progress: bool = False) -> Counter:
    """Stream the files once and count the words `split_words(line)` gives; all cores on large inputs."""
    total = sum(os.path.getsize(p) for p in paths)
    bar = ProgressBar("counting words", total, enabled=progress and total > BLOCK_BYTES)
    counts: Counter = Counter()
    if total > PARALLEL_BYTES and (os.cpu_count() or 1) > 1:
        workers = os.cpu_count() or 1
        with ProcessPoolExecutor(workers) as pool:
            pending = deque()
            for block in read_blocks(paths):  # at most 2 blocks per worker in flight: bounded memory
                pending.append(pool.submit(_count_block, block, split_words))
                if len(pending) >= 2 * workers:
                    counts.update(pending.popleft().result())
                    bar.step(BLOCK_BYTES)
            for future in pending:
                counts.update(future.result())
                bar.step(BLOCK_BYTES)
    else:
        for block in read_blocks(paths):
            counts.update(_count_block(block, split_words))
            bar.step(BLOCK_BYTES)
    bar.done()
    return counts


def _count_block(lines, split_words) -> Counter:
    counts: Counter = Counter()
    for line in lines:
        counts.update(split_words(line))
    return counts


class ProgressBar:
    """A minimal progress bar on stderr (only when enabled and stderr is a terminal or forced)."""

    def __init__(self, label: str, total: int, enabled: bool = True):
        self.label, self.total, self.n = label, max(total, 1), 0
        self.enabled = enabled

    def step(self, k: int = 1) -> None:
        """Advance by k units and redraw."""
        self.n = min(self.n + k, self.total)
        if self.enabled:
            filled = 30 * self.n // self.total
            print(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {100 * self.n // self.total:3d}%",
                  end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        """Finish the bar's line."""
        if self.enabled:
            print(file=sys.stderr, flush=True)


# --- sentencepiece style ----------------------------------------------------------------------
def script_of(ch: str) -> str:
    """A coarse Unicode script for SentencePiece's "no piece mixes scripts" rule.

    Letters and marks take the first word of their Unicode name (LATIN, CYRILLIC, CJK, ...),
    with Hiragana and Katakana folded into Han as SentencePiece does; everything else
    (digits, punctuation, symbols) is COMMON.
    """
    category = unicodedata.category(ch)
    if category[0] not in "LM":
        return "COMMON"
    name = unicodedata.name(ch, "UNKNOWN")
    first = name.split()[0]
    if first in ("HIRAGANA", "KATAKANA", "CJK", "HANGUL") or "IDEOGRAPH" in name:
        return "HAN" if first != "HANGUL" else "HANGUL"
    if first == "COMBINING":
        return "INHERITED"
    return first


class SentencePieceWords:
    """Callable that normalizes a line as SentencePiece does and splits it into "▁word" words."""

    def __init__(self, *, add_dummy_prefix: bool, remove_extra_whitespaces: bool):
        proto = _skeleton(add_dummy_prefix, remove_extra_whitespaces)
        self.tok = SentencePieceTokenizer(proto, source="trainer")

    def __call__(self, line: str) -> list[str]:
        return WORDS_RE.findall(self.tok.normalize(line))


def _skeleton(add_dummy_prefix: bool, remove_extra_whitespaces: bool) -> ModelProto:
    """The meta pieces (<unk> <s> </s>), 256 byte pieces and the specs of a new Llama-style model."""
    proto = ModelProto()
    for piece, typ in [("<unk>", UNKNOWN), ("<s>", CONTROL), ("</s>", CONTROL)]:
        proto.add_piece(piece, 0.0, typ)
    for b in range(256):
        proto.add_piece(f"<0x{b:02X}>", 0.0, BYTE)
    proto.trainer.update(model_type=2, byte_fallback=True, split_digits=True,
                         allow_whitespace_only_pieces=True)
    proto.normalizer.update(name="identity", add_dummy_prefix=add_dummy_prefix,
                            remove_extra_whitespaces=remove_extra_whitespaces, escape_whitespaces=True)
    return proto


def train_sentencepiece(paths, vocab_size: int, *, character_coverage: float = 0.9995,
                        max_piece_length: int = 16, add_dummy_prefix: bool = True,
                        remove_extra_whitespaces: bool = False, progress: bool = False,
                        on_merge=None, on_step=None) -> ModelProto:
    """Train a Llama-style SentencePiece BPE model on text files; return its ModelProto."""
    proto = _skeleton(add_dummy_prefix, remove_extra_whitespaces)
    split = SentencePieceWords(add_dummy_prefix=add_dummy_prefix, remove_extra_whitespaces=remove_extra_whitespaces)
    words = count_words(paths, split, progress=progress)
    if not words:
        raise TrainError("the corpus is empty: no text to learn from")

    # Characters by frequency; those past the coverage threshold are left to byte fallback.
    chars: Counter = Counter()
    for word, c in words.items():
        for ch in word:
            chars[ch] += c
    ranked = sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))
    total, seen, required = sum(chars.values()), 0, []
    for ch, c in ranked:
        if seen >= character_coverage * total:
            break
        seen += c
        required.append(ch)
    budget = vocab_size - len(proto.pieces) - len(required)
    if budget < 0:
        raise TrainError(f"{vocab_size} is too small: this corpus needs at least "
                         f"{len(proto.pieces) + len(required)} ({len(proto.pieces)} special and byte "
                         f"pieces + {len(required)} characters)", "vocab_size")

    symbols = list(required)                        # symbol id -> string
    char_id = {ch: i for i, ch in enumerate(symbols)}
    unk = len(symbols)
    symbols.append("\0unk")                         # stands for every dropped character; never merges
    info = [_symbol_info(s) for s in symbols]

    def can_merge(a: int, b: int) -> bool:
        while len(info) < len(symbols):             # symbols made by merges since last call
            info.append(_symbol_info(symbols[len(info)]))
        (len_a, space_a, all_space_a, digit_a, script_a) = info[a]
        (len_b, space_b, all_space_b, digit_b, script_b) = info[b]
        if a == unk or b == unk or digit_a or digit_b or len_a + len_b > max_piece_length:
            return False                            # digits stay single pieces (split_digits)
        if all_space_a and all_space_b:             # whitespace-only pieces ("▁▁") are allowed
            return True
        if space_b or (all_space_a and len_a > 1):  # otherwise "▁" only as the first character
            return False
        return script_a is None or script_b is None or script_a == script_b

    bar = ProgressBar("merging", budget, enabled=progress and budget > 500)

    def tick(a, b, new, count):
        if on_merge:
            on_merge(symbols[a], symbols[b], count)
        bar.step()

    word_ids = Counter()
    for word, c in words.items():
        word_ids[tuple(char_id.get(ch, unk) for ch in word)] += c
    base = len(symbols)
    step = (lambda counts: on_step(counts, symbols)) if on_step else None
    learn_merges(word_ids, symbols, base + budget, can_merge=can_merge, on_merge=tick, on_step=step)
    bar.done()
    # a small corpus may run out of pairs first: the vocabulary is then as large as it supports
    # (the caller sees len(proto.pieces) < vocab_size and says so)
    pieces = symbols[base:] + required
    for rank, piece in enumerate(pieces):
        proto.add_piece(piece, -float(rank), NORMAL)
    proto.trainer.update(vocab_size=len(proto.pieces), character_coverage=character_coverage,
                         max_sentencepiece_length=max_piece_length, input=[str(p) for p in paths])
    return proto


def _symbol_info(s: str) -> tuple:
    """(length, has "▁", only "▁", has a digit, script of the other characters or None)."""
    scripts = {script_of(ch) for ch in s if ch != SPACE}
    script = None if not scripts else scripts.pop() if len(scripts) == 1 else "MIXED"
    return (len(s), SPACE in s, s.strip(SPACE) == "", any("0" <= ch <= "9" for ch in s), script)
