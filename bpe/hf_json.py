"""Hugging Face `tokenizer.json` (the form TinyLlama's repo ships beside `tokenizer.model`).

For a SentencePiece-converted BPE (Llama's), the file holds the vocabulary, the merge list and
the normalizer (Prepend "▁", Replace " " -> "▁"). We rebuild a SentencePiece model from it:
a piece's score is minus the rank of the first merge that makes it, which orders merges exactly
as the converter wrote them (by the original scores), so encoding agrees with SentencePiece.
"""
import json

from .model_file import BYTE, CONTROL, NORMAL, UNKNOWN, ModelFileError, ModelProto
from .tokenizer import SPACE, SentencePieceTokenizer


def load_tokenizer_json(path) -> SentencePieceTokenizer:
    """Load a SentencePiece-style BPE `tokenizer.json` as a SentencePieceTokenizer."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        raise ModelFileError(f"cannot read tokenizer file {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: not valid JSON ({e})") from None
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise ModelFileError(f"{path}: not a BPE tokenizer.json (model.type must be BPE)")
    vocab, merges = model.get("vocab"), model.get("merges")
    if not isinstance(vocab, dict) or not isinstance(merges, list):
        raise ModelFileError(f"{path}: tokenizer.json has no vocab or merges")
    normalizers = _flatten(spec.get("normalizer"))
    if not any(n.get("type") == "Replace" and n.get("content") == SPACE for n in normalizers) and \
            (spec.get("pre_tokenizer") or {}).get("type") != "Metaspace":
        raise ModelFileError(f"{path}: not a SentencePiece-style tokenizer.json (no '▁' for spaces); "
                             "only Llama-style BPE vocabularies are supported")

    n = len(vocab)
    pieces = [None] * n
    for piece, i in vocab.items():
        if not 0 <= i < n or pieces[i] is not None:
            raise ModelFileError(f"{path}: vocabulary ids are not 0..{n - 1}")
        pieces[i] = piece
    first_rank: dict[str, int] = {}
    for rank, m in enumerate(merges):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        first_rank.setdefault(left + right, rank)
    special = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    unk = model.get("unk_token")
    proto = ModelProto()
    for piece in pieces:
        if piece == unk:
            typ = UNKNOWN
        elif piece in special:
            typ = CONTROL
        elif model.get("byte_fallback") and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            typ = BYTE
        else:
            typ = NORMAL
        proto.add_piece(piece, -float(first_rank.get(piece, len(merges))), typ)
    proto.trainer.update(model_type=2, byte_fallback=bool(model.get("byte_fallback")), vocab_size=n)
    prepend = any(x.get("type") == "Prepend" for x in normalizers) or \
        (spec.get("pre_tokenizer") or {}).get("prepend_scheme", "never") != "never"
    proto.normalizer.update(name="identity", add_dummy_prefix=prepend, remove_extra_whitespaces=False)
    return SentencePieceTokenizer(proto, source=str(path))


def _flatten(normalizer) -> list:
    if not normalizer:
        return []
    if normalizer.get("type") == "Sequence":
        return [n for sub in normalizer.get("normalizers", []) for n in _flatten(sub)]
    return [normalizer]
