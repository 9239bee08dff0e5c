"""bpe: Byte Pair Encoding from scratch: the trainers, and two tokenizer families behind one interface
(SentencePiece BPE for Llama-2 / TinyLlama, byte-level BPE for GPT-2 / Llama-3 / SmolLM2 / Qwen2)."""
from .bytelevel import ByteLevelBPE  # noqa: F401
from .interface import StreamDecoder, Tokenizer  # noqa: F401
from .sentencepiece import SentencePieceStreamDecoder, SentencePieceTokenizer  # noqa: F401
