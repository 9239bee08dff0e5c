"""bpe: Byte Pair Encoding from scratch: a trainer, and the SentencePiece-exact TinyLlama tokenizer."""
from .tokenizer import SentencePieceTokenizer, StreamDecoder  # noqa: F401
