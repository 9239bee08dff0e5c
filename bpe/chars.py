"""Characters as tokens: the vocabulary of nanoGPT's shakespeare_char, for training from scratch.

The vocabulary is the sorted set of characters of a corpus; id = rank in that order, so
"\\n" and " " come first in an English text. No merges, no BOS or EOS. A character outside the
vocabulary is dropped, as Hugging Face `tokenizers` drops it (a merge-less BPE with no unk).

Saved as a `tokenizer.json` that HF reads identically: a BPE model whose vocabulary is the
characters and whose merge list is empty, with no normalizer or pre-tokenizer and a Fuse decoder.

>>> tok = CharTokenizer.from_text("hello")
>>> tok.encode("hole"), tok.decode([2, 3])
([1, 3, 2, 0], 'lo')
"""
import json

from .interface import SpecialSettings


class CharTokenizer(SpecialSettings):
    """The one tokenizer interface (bpe/interface.py) over a character vocabulary."""

    bos_id = eos_id = -1
    add_bos = False

    def __init__(self, chars: list[str], source: str = "characters"):
        if not chars or any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError(f"{source}: a character vocabulary needs distinct single characters")
        self.chars, self.source = list(chars), source
        self.ids = {c: i for i, c in enumerate(self.chars)}
        self.stop_ids: set[int] = set()

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The sorted characters of a text as the vocabulary."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        """Number of characters."""
        return len(self.chars)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, special: bool = False,
               literal=()) -> list[int]:
        """One id per character of the vocabulary; other characters are dropped (there is no BOS/EOS)."""
        ids = self.ids
        return [ids[c] for c in text if c in ids]

    def decode(self, ids) -> str:
        """The characters of the ids, joined."""
        n = len(self.chars)
        for i in ids:
            if not 0 <= i < n:
                raise ValueError(f"id {i} is out of range (vocabulary of {n})")
        return "".join(self.chars[i] for i in ids)

    def stream_decoder(self) -> "CharStream":
        """Every id is a whole character: nothing is ever held back."""
        return CharStream(self)

    def id_to_piece(self, i: int) -> str:
        """The character of an id."""
        return self.chars[i]

    def piece_to_id(self, piece: str) -> int | None:
        """The id of a character, or None."""
        return self.ids.get(piece)

    def is_control(self, i: int) -> bool:
        """No character is a control token."""
        return False

    def hf_files(self) -> dict[str, bytes]:
        """{"tokenizer.json": the characters as a WordLevel-style vocabulary HF reads the same}."""
        return {"tokenizer.json": self.to_tokenizer_json().encode("utf-8")}

    def to_tokenizer_json(self) -> str:
        """The tokenizer.json HF `tokenizers` (and our loader) read as this same tokenizer."""
        return json.dumps({
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": {"type": "Fuse"},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": self.ids, "merges": []}}, ensure_ascii=False, indent=1)


class CharStream:
    """Streaming decode for characters: each id is final at once."""

    def __init__(self, tok: CharTokenizer):
        self.tok = tok

    def feed(self, i: int) -> str:
        """The character of id i."""
        return self.tok.decode([i])

    def flush(self) -> str:
        """Nothing is held back."""
        return ""


def is_char_spec(spec: dict) -> bool:
    """True for a tokenizer.json of CharTokenizer's form: merge-less BPE over single characters."""
    model = spec.get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    decoder = spec.get("decoder")
    return (isinstance(vocab, dict) and model.get("merges") == [] and not spec.get("added_tokens")
            and spec.get("normalizer") is None and spec.get("pre_tokenizer") is None
            and isinstance(decoder, dict) and decoder.get("type") == "Fuse" and not model.get("byte_fallback")
            and all(isinstance(c, str) and len(c) == 1 for c in vocab))


def from_char_spec(spec: dict, source: str) -> CharTokenizer:
    """CharTokenizer from its tokenizer.json form; ids must be 0..n-1."""
    vocab = spec["model"]["vocab"]
    if sorted(vocab.values()) != list(range(len(vocab))) or not all(type(i) is int for i in vocab.values()):
        raise ValueError("character ids must be 0..n-1, each once")
    return CharTokenizer(sorted(vocab, key=vocab.get), source=source)
