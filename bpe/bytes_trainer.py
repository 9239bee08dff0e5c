"""The GPT-style byte-level BPE tokenizer: UTF-8 bytes, a regex pre-split, merges by rank.

Text is cut into chunks by a regex (GPT-4's pattern by default; what it does not match is kept
as chunks too), each chunk becomes its UTF-8 bytes (ids 0..255), and the learned merges are
applied lowest rank first, by the same merge loop as loaded vocabularies (bpe/bytelevel.py).
Every string round-trips exactly. Saved as versioned text (`PREFIX.model`), with a readable
`PREFIX.vocab`, and, on request, as a Hugging Face tokenizer.json.
"""
import json

import regex

from .added_tokens import AddedToken
from .bytelevel import ByteLevelBPE
from .merges import learn_merges
from .patterns import CL100K
from .pipeline import BYTE_TO_CHAR, regex_to_bytes, split_pieces

GPT4_PATTERN = CL100K  # GPT-4's (bpe/patterns.py)
HEADER = "tinyllama-from-scratch bytes-bpe v1"


class ByteTokenizer(ByteLevelBPE):
    """Our trained byte-level BPE: ids 0..255 are the bytes, then `merges` (a, b, new id) in the
    order learned, then special tokens. Encoding is ByteLevelBPE's: the regex cuts, merges by rank."""

    def __init__(self, merges: list[tuple[int, int, int]], *, pattern: str = GPT4_PATTERN,
                 special_tokens: dict[str, int] | None = None):
        self.pattern = pattern
        self.merge_list = list(merges)
        self.special = dict(special_tokens or {})
        raw = {i: bytes([i]) for i in range(256)}
        for a, b, new in merges:
            raw[new] = raw[a] + raw[b]
        chars = {i: "".join(BYTE_TO_CHAR[x] for x in data) for i, data in raw.items()}
        super().__init__({c: i for i, c in chars.items()}, [(chars[a], chars[b]) for a, b, _ in merges],
                         added=[AddedToken(i, s, special=True) for s, i in self.special.items()],
                         pre_tokenizer=regex_to_bytes(pattern),
                         source="bytes-bpe model")

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
        return "".join(f"{i}\t{json.dumps(self.bytes_of[i].decode('utf-8', errors='replace'), ensure_ascii=False)}\n"
                       for i in sorted(self.bytes_of))

    def hf_files(self) -> dict[str, bytes]:
        """{"tokenizer.json": our bytes-style BPE as HF tokenizers reads it}."""
        return {"tokenizer.json": self.to_tokenizer_json().encode("utf-8")}

    def to_tokenizer_json(self) -> str:
        """The same tokenizer as a Hugging Face tokenizer.json (HF `tokenizers` encodes identically)."""
        spec = {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for s, i in self.special.items()],
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": self.pattern}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {t: i for i, t in sorted((i, t) for t, i in self.vocab.items())},
                      "merges": [[self.pieces[a], self.pieces[b]] for a, b, _ in self.merge_list]},
        }
        return json.dumps(spec, ensure_ascii=False, indent=1)

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
    """Picklable callable: the regex pre-split of the bytes style (what it does not match stays, too)."""

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __call__(self, line: str) -> list[str]:
        if not hasattr(self, "_re"):
            self._re = regex.compile(self.pattern)
        return split_pieces(line + "\n", self._re)


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
