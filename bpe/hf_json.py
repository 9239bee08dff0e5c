"""Hugging Face `tokenizer.json`: both BPE families (and our characters form), told apart by content.

SentencePiece-style (Llama-2, TinyLlama): "▁" stands for spaces (a Replace normalizer or a
Metaspace pre-tokenizer). We rebuild a SentencePiece model from it: a piece's score is minus
the rank of the first merge that makes it, which orders merges exactly as the converter wrote
them (by the original scores), so encoding agrees with SentencePiece.

Byte-level (GPT-2, Llama-3, SmolLM2, Qwen2): a ByteLevel pre-tokenizer; becomes ByteLevelBPE
with the file's normalizer, pre-tokenizers, added tokens and post-processor (BOS/EOS).

Every part's JSON shape is checked here, once; problems raise ModelFileError naming the file.
"""
import json

from .added_tokens import AddedToken
from .bytelevel import ByteLevelBPE
from .chars import from_char_spec, is_char_spec
from files.json_file import JSONFileError, read_json

from .model_file import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED, ModelFileError, ModelProto
from .pipeline import SpecError, normalizer_from_json, pre_tokenizer_from_json
from .sentencepiece import SPACE, HFDecoding, SentencePieceTokenizer

MAX_JSON_BYTES = 1 << 30


def load_tokenizer_json(path, data: bytes | None = None):
    """Load a BPE `tokenizer.json` as a SentencePieceTokenizer or a ByteLevelBPE."""
    if data is None:
        try:
            spec = read_json(path, MAX_JSON_BYTES)
        except JSONFileError as e:
            raise ModelFileError(str(e)) from None
    else:
        try:
            spec = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ModelFileError(f"{path}: not valid JSON ({str(e)[:100]})") from None
    try:
        return from_spec(spec, str(path))
    except (SpecError, ValueError) as e:
        raise ModelFileError(f"{path}: {e}") from None


def from_spec(spec, source: str):
    """Build the tokenizer of a parsed tokenizer.json; ValueError naming what is wrong."""
    if not isinstance(spec, dict):
        raise SpecError("not a tokenizer.json (expected a JSON object)")
    model = spec.get("model")
    if not isinstance(model, dict):
        raise SpecError("no 'model' object")
    if is_char_spec(spec):
        return from_char_spec(spec, source)
    if model.get("type", "BPE") != "BPE":
        raise SpecError(f"model type {model.get('type')!r} is not supported (only BPE)")
    vocab = _vocab(model.get("vocab"))
    merges = _merges(model.get("merges"))
    added = _added_tokens(spec.get("added_tokens", []))
    for name in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(name):
            raise SpecError(f"model.{name} {model[name]!r} is not supported")
    if model.get("dropout") not in (None, 0, 0.0):
        raise SpecError(f"model.dropout {model['dropout']!r} is not supported (encoding would be random)")
    if _sentencepiece_style(spec):
        return _sentencepiece(model, vocab, merges, added, spec, source)
    normalizer = normalizer_from_json(spec.get("normalizer"))
    pre = pre_tokenizer_from_json(spec.get("pre_tokenizer"))
    if not _has_byte_level(spec.get("pre_tokenizer")):
        raise SpecError("neither byte-level (no ByteLevel pre_tokenizer) nor SentencePiece-style ('▁') BPE")
    prefix, suffix = _post_processor(spec.get("post_processor"), vocab, added)
    unk = model.get("unk_token")
    tok = ByteLevelBPE(vocab, merges, added=added, normalizer=normalizer, pre_tokenizer=pre,
                       ignore_merges=bool(model.get("ignore_merges", False)),
                       unk_token=unk if isinstance(unk, str) else None, fuse_unk=bool(model.get("fuse_unk")),
                       prefix_ids=prefix, suffix_ids=suffix, source=source,
                       add_bos=bool(prefix))  # HF puts BOS in front exactly when the post-processor does
    return tok


def _sentencepiece_style(spec) -> bool:
    pre = spec.get("pre_tokenizer")
    return any(n.get("type") == "Replace" and n.get("content") == SPACE for n in _flatten(spec.get("normalizer"))) \
        or any(p.get("type") == "Metaspace" for p in _flatten(pre, "pretokenizers"))


def _has_byte_level(pre) -> bool:
    return any(p.get("type") == "ByteLevel" for p in _flatten(pre, "pretokenizers"))


def _vocab(vocab) -> dict[str, int]:
    if not isinstance(vocab, dict) or not vocab:
        raise SpecError("model.vocab must be a non-empty object {token: id}")
    for token, i in vocab.items():
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise SpecError(f"model.vocab: id of {token[:40]!r} must be a non-negative integer, got {i!r}")
    if len(set(vocab.values())) != len(vocab):
        raise SpecError("model.vocab gives the same id to two tokens")
    return vocab


def _merges(merges) -> list[tuple[str, str]]:
    if not isinstance(merges, list):
        raise SpecError("model.merges must be a list")
    out = []
    for k, m in enumerate(merges):
        if isinstance(m, str) and m.count(" ") == 1:
            a, b = m.split(" ")
        elif isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
            a, b = m
        else:
            raise SpecError(f"model.merges[{k}] must be \"left right\" or [left, right], got {str(m)[:60]!r}")
        out.append((a, b))
    return out


def _added_tokens(entries) -> list[AddedToken]:
    if not isinstance(entries, list):
        raise SpecError("added_tokens must be a list")
    out = []
    for k, t in enumerate(entries):
        if not isinstance(t, dict) or isinstance(t.get("id"), bool) or not isinstance(t.get("id"), int) \
                or t["id"] < 0 or not isinstance(t.get("content"), str):
            raise SpecError(f"added_tokens[{k}] must be an object with an integer 'id' and a string 'content'")
        flags = {f: bool(t.get(f, False)) for f in ("special", "lstrip", "rstrip", "single_word")}
        out.append(AddedToken(t["id"], t["content"], normalized=bool(t.get("normalized", not flags["special"])),
                              **flags))
    return out


def _post_processor(spec, vocab, added) -> tuple[list[int], list[int]]:
    """The ids the post-processor puts before and after a single text (BOS / EOS)."""
    if spec is None:
        return [], []
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "Sequence":
        prefix, suffix = [], []
        for p in spec.get("processors", []) or []:
            a, b = _post_processor(p, vocab, added)
            prefix, suffix = prefix + a, b + suffix
        return prefix, suffix
    if kind == "TemplateProcessing":
        specials = spec.get("special_tokens") or {}
        prefix, suffix, seen = [], [], False
        for item in spec.get("single") or []:
            if isinstance(item, dict) and "Sequence" in item:
                seen = True
            elif isinstance(item, dict) and isinstance(item.get("SpecialToken"), dict):
                name = item["SpecialToken"].get("id")
                ids = (specials.get(name) or {}).get("ids") if isinstance(specials, dict) else None
                if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                    raise SpecError(f"post_processor: special token {name!r} has no ids")
                (suffix if seen else prefix).extend(ids)
        return prefix, suffix
    if kind in ("RobertaProcessing", "BertProcessing"):
        cls, sep = spec.get("cls"), spec.get("sep")
        try:
            return [int(cls[1])], [int(sep[1])]
        except (TypeError, ValueError, IndexError):
            raise SpecError(f"post_processor {kind}: cls and sep must be [token, id]") from None
    if kind == "ByteLevel":
        return [], []
    raise SpecError(f"post_processor {kind!r} is not supported")


def _sentencepiece(model, vocab, merges, added, spec, source) -> SentencePieceTokenizer:
    n = len(vocab)
    pieces = [None] * n
    for piece, i in vocab.items():
        if i >= n or pieces[i] is not None:
            raise SpecError(f"vocabulary ids are not 0..{n - 1}")
        pieces[i] = piece
    first_rank: dict[str, int] = {}
    for rank, (left, right) in enumerate(merges):
        first_rank.setdefault(left + right, rank)
    special = {t.content for t in added if t.special}
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
    # added tokens beyond the vocabulary (a fine-tune's <pad>) get their ids, as HF gives them
    extra = sorted((t for t in added if t.id >= n), key=lambda t: t.id)
    for k, t in enumerate(extra):
        if t.id != n + k:
            raise SpecError(f"added token {t.content!r} has id {t.id}; ids after the vocabulary must follow "
                            f"on from {n} without gaps")
        proto.add_piece(t.content, 0.0, CONTROL if t.special else USER_DEFINED)
    proto.trainer.update(model_type=2, byte_fallback=bool(model.get("byte_fallback")), vocab_size=n)
    scheme = _metaspace_scheme(spec)
    prepend = any(x.get("type") == "Prepend" for x in _flatten(spec.get("normalizer"))) or scheme not in (None, "never")
    proto.normalizer.update(name="identity", add_dummy_prefix=prepend, remove_extra_whitespaces=False)
    decoders = _flatten(spec.get("decoder"), "decoders")
    decoding = HFDecoding(
        strip=_decoder_strip(spec.get("decoder")),
        byte_fallback=any(d.get("type") == "ByteFallback" for d in decoders),
        metaspace=any(d.get("type") == "Metaspace" and (d.get("prepend_scheme") or
                      ("always" if d.get("add_prefix_space", True) else "never")) != "never" for d in decoders))
    return SentencePieceTokenizer(proto, source=source, hf_decoding=decoding,
                                  hf_prepend=scheme if scheme in ("first", "always") else None)


def _metaspace_scheme(spec) -> str | None:
    """A Metaspace pre-tokenizer's prepend scheme (older files say add_prefix_space), or None."""
    for p in _flatten(spec.get("pre_tokenizer"), "pretokenizers"):
        if p.get("type") == "Metaspace":
            if p.get("split") is True:
                raise SpecError("a Metaspace pre-tokenizer with split = true is not supported")
            return p.get("prepend_scheme") or ("always" if p.get("add_prefix_space", True) else "never")
    return None


def _decoder_strip(decoder) -> int:
    """How many leading spaces HF's decoder removes with a Strip step (a Metaspace decoder drops the
    first token's "▁"s instead: HFDecoding.metaspace)."""
    for step in _flatten(decoder, "decoders"):
        if step.get("type") == "Strip" and isinstance(step.get("start"), int) and not isinstance(step["start"], bool):
            return max(0, min(step["start"], 16))
    return 0


def _flatten(node, key: str = "normalizers") -> list[dict]:
    if not isinstance(node, dict):
        return []
    if node.get("type") == "Sequence":
        subs = node.get(key, [])
        return [n for sub in (subs if isinstance(subs, list) else []) for n in _flatten(sub, key)]
    return [node]
