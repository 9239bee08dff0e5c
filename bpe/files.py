"""Loading any tokenizer file, and writing trained tokenizers (both files or neither).

`load_tokenizer` accepts a SentencePiece `.model`, a Hugging Face `tokenizer.json` (either
family), a tiktoken rank file (with a named regex), or our bytes-bpe `.model`; it tells them
apart by content, never by name.
"""
from files.atomic import write_all
from files.gguf import GGUFError, GGUFFile

from .bytes_trainer import HEADER, ByteTokenizer
from .hf_json import load_tokenizer_json
from .gguf_vocab import tokenizer_from_gguf
from .model_file import ModelFileError, ModelProto, read_model_bytes
from .tiktoken_file import load_rank_file, looks_like_rank_file
from .sentencepiece import SentencePieceTokenizer


def load_tokenizer(path, *, pattern: str | None = None):
    """Load a tokenizer file of any supported kind; raise ModelFileError naming the file.

    `pattern` names the regex of a tiktoken rank file (bpe/patterns.py); other kinds refuse it.
    """
    if read_model_bytes(path, limit=4) == b"GGUF":
        return load_gguf_tokenizer(path, pattern)
    data = read_model_bytes(path)
    if looks_like_rank_file(data):
        return load_rank_file(path, pattern, data)
    if pattern is not None:
        raise ModelFileError(f"{pattern}: only tiktoken rank files take a pattern; {path} names its own", "pattern")
    if data.startswith(HEADER.encode()):
        try:
            return ByteTokenizer.from_text(data.decode("utf-8"), source=str(path))
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelFileError(str(e)) from None
    if data.lstrip()[:1] == b"{":
        return load_tokenizer_json(path, data)
    try:
        proto = ModelProto.from_bytes(data)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: none of the tokenizer kinds we read (a SentencePiece .model, a tokenizer.json, "
                             f"a tiktoken rank file, our bytes-bpe .model, a GGUF file): {e}") from None
    return SentencePieceTokenizer(proto, source=str(path))


def load_gguf_tokenizer(path, pattern=None):
    """The tokenizer inside a GGUF file; the whole file's header is checked first."""
    if pattern is not None:
        raise ModelFileError(f"{pattern}: only tiktoken rank files take a pattern; the GGUF file {path} names its own",
                             "pattern")
    try:
        meta = GGUFFile(path).metadata
    except GGUFError as e:
        raise ModelFileError(str(e)) from None
    return tokenizer_from_gguf(meta, str(path))


def model_files(model, prefix: str) -> dict[str, bytes]:
    """PREFIX.model and the readable PREFIX.vocab, as bytes by path."""
    if isinstance(model, ModelProto):
        data = model.to_bytes()
        vocab = "".join(f"{p}\t{s:g}\n" for p, s in zip(model.pieces, model.scores))
    else:
        data = model.to_text().encode("utf-8")
        vocab = model.vocab_text()
    return {prefix + ".model": data, prefix + ".vocab": vocab.encode("utf-8")}


def save_model(model, prefix: str) -> list[str]:
    """Write PREFIX.model and the readable PREFIX.vocab (both or neither); return the two paths."""
    files = model_files(model, prefix)
    write_all(files)
    return list(files)
