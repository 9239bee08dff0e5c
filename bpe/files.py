"""Loading any tokenizer file, and writing trained models atomically.

`load_tokenizer` accepts a SentencePiece `.model`, a Hugging Face `tokenizer.json` (either
family), a tiktoken rank file (with a named regex), or our bytes-bpe `.model`; it tells them
apart by content, never by name.
"""
import os
import tempfile
from contextlib import contextmanager

from .byte_tokenizer import HEADER, ByteTokenizer
from .hf_json import load_tokenizer_json
from .gguf_vocab import tokenizer_from_gguf
from .model_file import ModelFileError, ModelProto, read_model_bytes
from .tiktoken_file import load_rank_file, looks_like_rank_file
from .tokenizer import SentencePieceTokenizer


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
        raise ModelFileError(f"{path}: --pattern is only for tiktoken rank files; this file names its own")
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
    from model.formats.gguf import GGUFError, GGUFFile  # the container reader lives with the model
    if pattern is not None:
        raise ModelFileError(f"{path}: --pattern is only for tiktoken rank files; a GGUF file names its own")
    try:
        meta = GGUFFile(path).metadata
    except GGUFError as e:
        raise ModelFileError(str(e)) from None
    return tokenizer_from_gguf(meta, str(path))


@contextmanager
def atomic_file(path):
    """Open a file for writing so that it is either complete or absent: a temp file beside it,
    renamed into place on success, removed on any failure. Mode 0666 minus the umask, as
    open() (and spm_train) would give, not mkstemp's 0600. The project's one atomic writer."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_atomic(path, data: bytes) -> None:
    """Write bytes to a file so that it is either complete or absent."""
    with atomic_file(path) as f:
        f.write(data)


def write_all(files: dict[str, bytes]) -> None:
    """Write several files all or nothing: every target checked, every temp file written, then all
    renamed into place; on any failure none of them is left (OSError names the file that failed)."""
    for path in files:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "is a directory", path)
    temps, placed = {}, []
    try:
        for path, data in files.items():
            folder = os.path.dirname(os.path.abspath(path))
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            except OSError as e:
                raise type(e)(e.errno, e.strerror, path) from None
            temps[path] = tmp
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for path, tmp in temps.items():
            os.replace(tmp, path)
            placed.append(path)
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        for path in placed:
            os.unlink(path)
        raise


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
