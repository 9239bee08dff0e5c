"""The one tokenizer interface: what `model/` and the CLI may use, whichever family a file holds.

Both families implement it: `SentencePieceTokenizer` (bpe/sentencepiece.py: Llama-2, TinyLlama) and
`ByteLevelBPE` (bpe/bytelevel.py: GPT-2, Llama-3, SmolLM2, Qwen2, tiktoken files). Code outside
`bpe/` never asks which one it holds. `load_tokenizer` (bpe/files.py) reads any supported file.
"""
import copy
from typing import Protocol


class StreamDecoder(Protocol):
    """Decodes ids one at a time; never returns half a UTF-8 character."""

    def feed(self, i: int) -> str:
        """Take one id; return the text that is now final."""

    def flush(self) -> str:
        """Return the text still held back."""


class Tokenizer(Protocol):
    """Text <-> ids, with the model's special ids. Every field is set when the tokenizer is built; a
    model's own settings (tokenizer_config.json, generation_config.json) make a completed copy
    with `with_specials`, and `hf_files` says how the tokenizer is saved."""

    bos_id: int          # -1 when the vocabulary has none
    eos_id: int          # -1 when the vocabulary has none
    add_bos: bool        # whether the model's own settings put BOS in front of a prompt
    stop_ids: set[int]   # ids that end an answer (EOS, end of turn)

    @property
    def vocab_size(self) -> int:
        """One more than the largest id."""

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, special: bool = False,
               literal=()) -> list[int]:
        """Text to ids; `special`: special tokens' text becomes their ids, except inside the (start, end)
        spans of `literal`; `bos`/`eos` add them."""

    def decode(self, ids) -> str:
        """Ids to text (ValueError for an id out of range)."""

    def stream_decoder(self) -> StreamDecoder:
        """A decoder for ids that arrive one at a time."""

    def id_to_piece(self, i: int) -> str:
        """The vocabulary's own string for an id."""

    def is_control(self, i: int) -> bool:
        """True for special/control tokens (generated output does not print them)."""

    def with_specials(self, *, bos_id: int | None = None, eos_id: int | None = None, add_bos: bool | None = None,
                      stop_ids: set[int] | None = None) -> "Tokenizer":
        """A copy with a model's special-token settings (the vocabulary is shared, not copied)."""

    def hf_files(self) -> dict[str, bytes]:
        """The files that save this tokenizer for Hugging Face loaders ({"tokenizer.json": ...} or
        {"tokenizer.model": ...}); ValueError when it has no such form."""


class SpecialSettings:
    """What the tokenizer classes share: `with_specials`, the one way to change the special-token settings."""

    def with_specials(self, *, bos_id: int | None = None, eos_id: int | None = None, add_bos: bool | None = None,
                      stop_ids: set[int] | None = None):
        """A copy with a model's special-token settings (the vocabulary is shared, not copied)."""
        out = copy.copy(self)
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("add_bos", add_bos)):
            if value is not None:
                setattr(out, name, value)
        out.stop_ids = set(self.stop_ids if stop_ids is None else stop_ids)
        out.add_bos = bool(out.add_bos) and out.bos_id >= 0
        return out
