"""The GPT-style byte-level BPE tokenizer: UTF-8 bytes, a regex pre-split, merges by rank.

Text is cut into chunks by a regex (GPT-4's pattern by default), each chunk becomes its UTF-8
bytes (ids 0..255), and the learned merges are applied lowest rank first. Every string
round-trips exactly. Saved as versioned text (`PREFIX.model`), with a readable `PREFIX.vocab`.
"""
import json

import regex

from .merges import learn_merges, merge

GPT4_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
                r"""|\s*[\r\n]|\s+(?!\S)|\s+""")
HEADER = "tinyllama-from-scratch bytes-bpe v1"


class ByteTokenizer:
    """Byte-level BPE: `merges[(a, b)] = new_id` in the order learned, plus optional special tokens."""

    def __init__(self, merges: list[tuple[int, int, int]], *, pattern: str = GPT4_PATTERN,
                 special_tokens: dict[str, int] | None = None):
        self.pattern = pattern
        self.split_re = regex.compile(pattern)
        self.merges = {(a, b): (rank, new) for rank, (a, b, new) in enumerate(merges)}
        self.merge_list = list(merges)
        self.vocab = {i: bytes([i]) for i in range(256)}
        for a, b, new in merges:
            self.vocab[new] = self.vocab[a] + self.vocab[b]
        self.special = dict(special_tokens or {})
        self.vocab.update({i: s.encode("utf-8") for s, i in self.special.items()})
        self._special_re = (regex.compile("(" + "|".join(map(regex.escape, sorted(self.special, key=len, reverse=True))) + ")")
                            if self.special else None)
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids (256 bytes + merges + special tokens)."""
        return len(self.vocab)

    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """Encode text; special-token text becomes its id only when `special` is true."""
        if special and self._special_re:
            ids = []
            for k, part in enumerate(self._special_re.split(text)):
                ids += [self.special[part]] if k % 2 else self._encode_ordinary(part)
            return ids
        return self._encode_ordinary(text)

    def _encode_ordinary(self, text: str) -> list[int]:
        ids = []
        for chunk in self.split_re.findall(text):
            hit = self._cache.get(chunk)
            if hit is None:
                hit = self._cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
            ids += hit
        return ids

    def _encode_chunk(self, data: bytes) -> list[int]:
        """Apply merges to one chunk's bytes, always the lowest-rank pair present first."""
        ids = list(data)
        while len(ids) >= 2:
            ranked = [(self.merges[p][0], p) for p in zip(ids, ids[1:]) if p in self.merges]
            if not ranked:
                break
            _, pair = min(ranked)
            ids = merge(ids, pair, self.merges[pair][1])
        return ids

    def decode(self, ids) -> str:
        """Decode ids to text (invalid UTF-8 from a partial sequence becomes U+FFFD)."""
        try:
            return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")
        except KeyError as e:
            raise ValueError(f"id {e.args[0]!r} is out of range (vocabulary has {self.vocab_size} ids)") from None

    def id_to_piece(self, i: int) -> str:
        """A readable form of the token's bytes (invalid UTF-8 shown as U+FFFD)."""
        return self.decode([i])

    # --- files ---------------------------------------------------------------------------------
    def to_text(self) -> str:
        """The `.model` file contents: header, pattern, special tokens, merges."""
        lines = [HEADER, "pattern " + json.dumps(self.pattern), f"special {len(self.special)}"]
        lines += [f"{json.dumps(s)} {i}" for s, i in self.special.items()]
        lines.append(f"merges {len(self.merge_list)}")
        lines += [f"{a} {b} {new}" for a, b, new in self.merge_list]
        return "\n".join(lines) + "\n"

    def vocab_text(self) -> str:
        """The `.vocab` file: one "id<TAB>token" line per id, for people to read."""
        return "".join(f"{i}\t{json.dumps(self.vocab[i].decode('utf-8', errors='replace'), ensure_ascii=False)}\n"
                       for i in sorted(self.vocab))

    @classmethod
    def from_text(cls, text: str, source: str = "model") -> "ByteTokenizer":
        """Parse `.model` text written by `to_text`; raise ValueError naming the problem."""
        lines = text.split("\n")
        try:
            if lines[0] != HEADER:
                raise ValueError("not a bytes-bpe model")
            pattern = json.loads(lines[1].removeprefix("pattern "))
            n_special = int(lines[2].removeprefix("special "))
            special = {}
            for line in lines[3:3 + n_special]:
                s, i = line.rsplit(" ", 1)
                special[json.loads(s)] = int(i)
            n_merges = int(lines[3 + n_special].removeprefix("merges "))
            merges = [tuple(map(int, line.split())) for line in lines[4 + n_special:4 + n_special + n_merges]]
            if any(len(m) != 3 for m in merges) or len(merges) != n_merges:
                raise ValueError("merge list is truncated")
            return cls(merges, pattern=pattern, special_tokens=special)
        except (ValueError, IndexError, KeyError, regex.error) as e:
            raise ValueError(f"{source}: not a valid bytes-bpe model ({e})") from None


class RegexWords:
    """Picklable callable: the regex pre-split of the bytes style."""

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __call__(self, line: str) -> list[str]:
        if not hasattr(self, "_re"):
            self._re = regex.compile(self.pattern)
        return self._re.findall(line + "\n")


def train_bytes(words: dict[str, int], vocab_size: int, *, pattern: str = GPT4_PATTERN,
                special_tokens: list[str] = (), on_merge=None, on_step=None) -> ByteTokenizer:
    """Learn merges over regex-split chunks `{chunk: count}` until the vocabulary has `vocab_size` ids."""
    word_ids = {}
    for w, c in words.items():
        key = tuple(w.encode("utf-8"))
        word_ids[key] = word_ids.get(key, 0) + c
    symbols = [bytes([i]) for i in range(256)]

    def tick(a, b, new, count):
        if on_merge:
            on_merge(symbols[a], symbols[b], count)

    target = vocab_size - len(special_tokens)
    step = (lambda counts: on_step(counts, symbols)) if on_step else None
    merges = learn_merges(word_ids, symbols, target, on_merge=tick, on_step=step)
    special = {s: len(symbols) + k for k, s in enumerate(special_tokens)}
    return ByteTokenizer(merges, pattern=pattern, special_tokens=special)
