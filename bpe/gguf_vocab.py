"""The tokenizer inside a GGUF file, from its `tokenizer.ggml.*` metadata, as llama.cpp reads it.

  tokenizer.ggml.model "llama": SentencePiece (tokens, scores, token_type) -> SentencePieceTokenizer
  tokenizer.ggml.model "gpt2":  byte-level BPE (tokens, merges, token_type, and `pre`, the name
                                of the pre-tokenizer regex: bpe/patterns.py GGUF_PRE) -> ByteLevelBPE
Token types are SentencePiece's: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
Control tokens are special tokens; user-defined ones are added tokens matched in any text.
BOS / EOS / end-of-turn ids and add_bos come from the metadata, with llama.cpp's defaults.
"""
import sys

from .added_tokens import AddedToken
from .bytelevel import ByteLevelBPE
from .model_file import BYTE, CONTROL, TYPE_NAMES, UNKNOWN, USER_DEFINED, ModelFileError, ModelProto
from .patterns import GGUF_DEFAULT, GGUF_PRE
from .pipeline import chain, regex_split, regex_to_bytes
from .sentencepiece import SentencePieceTokenizer

# llama.cpp also ends generation at control tokens with these texts (end of turn / of text)
END_OF_TURN_TEXTS = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
                     "<|end_of_text|>", "<｜end▁of▁sentence｜>", "<|return|>", "<|call|>"}


def tokenizer_from_gguf(meta: dict, source: str, warn=None):
    """Build the tokenizer described by a GGUF file's metadata; ModelFileError naming the problem."""
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    kind = meta.get("tokenizer.ggml.model")
    tokens = meta.get("tokenizer.ggml.tokens")
    if kind is None or tokens is None:
        raise ModelFileError(f"{source}: the GGUF file has no tokenizer (tokenizer.ggml.model / tokens)")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ModelFileError(f"{source}: tokenizer.ggml.tokens must be a non-empty list of strings")
    n = len(tokens)
    types = _int_list(meta, "tokenizer.ggml.token_type", n, source, default=[1] * n)
    if any(t not in TYPE_NAMES for t in types):
        raise ModelFileError(f"{source}: tokenizer.ggml.token_type has a value outside 1..6")
    ids = {name: _token_id(meta, f"tokenizer.ggml.{name}_token_id", n, source)
           for name in ("bos", "eos", "eot", "unknown")}
    stops = {i for i in (ids["eos"], ids["eot"]) if i is not None}
    stops |= {i for i, (t, typ) in enumerate(zip(tokens, types)) if typ == CONTROL and t in END_OF_TURN_TEXTS}
    if kind == "llama":
        add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", True))
        return _sentencepiece(meta, tokens, types, ids, source, add_bos=add_bos, stop_ids=stops)
    if kind == "gpt2":
        return _byte_level(meta, tokens, types, ids, source, warn, stop_ids=stops)
    raise ModelFileError(f"{source}: tokenizer.ggml.model {kind!r} is not supported (only 'llama' and 'gpt2')")


def _int_list(meta, key, n, source, default):
    value = meta.get(key, default)
    if not isinstance(value, list) or len(value) != n or not all(isinstance(v, int) for v in value):
        raise ModelFileError(f"{source}: {key} must be a list of {n} integers (one per token)")
    return value


def _token_id(meta, key, n, source):
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise ModelFileError(f"{source}: {key} = {value!r} is not a token id (0..{n - 1})")
    return value


def _sentencepiece(meta, tokens, types, ids, source, *, add_bos: bool, stop_ids: set) -> SentencePieceTokenizer:
    scores = meta.get("tokenizer.ggml.scores", [0.0] * len(tokens))
    if not isinstance(scores, list) or len(scores) != len(tokens) or \
            not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores):
        raise ModelFileError(f"{source}: tokenizer.ggml.scores must be {len(tokens)} numbers")
    unk = ids["unknown"]
    if unk is not None and types[unk] != UNKNOWN and UNKNOWN not in types:
        types = types[:unk] + [UNKNOWN] + types[unk + 1:]   # Gemma's files type <unk> as control: its id decides
    proto = ModelProto()
    for piece, score, typ in zip(tokens, scores, types):
        proto.add_piece(piece, float(score), typ)
    names = {"bos": "bos_piece", "eos": "eos_piece", "unknown": "unk_piece"}
    for name, field in names.items():
        if ids[name] is not None:
            proto.trainer[field] = tokens[ids[name]]
    if ids["unknown"] is None and UNKNOWN not in types:
        raise ModelFileError(f"{source}: a 'llama' tokenizer needs an unknown token")
    proto.trainer.update(model_type=2, byte_fallback=BYTE in types, vocab_size=len(tokens))
    proto.normalizer.update(name="identity", add_dummy_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", True)),
                            remove_extra_whitespaces=False)
    return SentencePieceTokenizer(proto, source=source, add_bos=add_bos, stop_ids=stop_ids, raw_user_defined=True)


def _byte_level(meta, tokens, types, ids, source, warn, *, stop_ids: set) -> ByteLevelBPE:
    merges = meta.get("tokenizer.ggml.merges", [])
    if not isinstance(merges, list):
        raise ModelFileError(f"{source}: tokenizer.ggml.merges must be a list of strings")
    pairs = []
    for k, m in enumerate(merges):
        if not isinstance(m, str) or m.count(" ") != 1:
            raise ModelFileError(f"{source}: tokenizer.ggml.merges[{k}] is not \"left right\": {str(m)[:40]!r}")
        pairs.append(tuple(m.split(" ")))
    name = meta.get("tokenizer.ggml.pre", GGUF_DEFAULT)
    spec = GGUF_PRE.get(name)
    if spec is None:
        warn(f"{source}: unknown pre-tokenizer {name!r}; using llama.cpp's default, "
             f"as llama.cpp does (known: {', '.join(sorted(GGUF_PRE))})")
        spec = GGUF_PRE[GGUF_DEFAULT]
    steps = [regex_split(r) for r in spec.regexes[:-1]] + [regex_to_bytes(spec.regexes[-1])]  # last: to bytes
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ModelFileError(f"{source}: tokenizer.ggml.tokens has duplicates")
    added = [AddedToken(i, t, special=typ == CONTROL) for i, (t, typ) in enumerate(zip(tokens, types))
             if typ in (CONTROL, USER_DEFINED)]

    bos = ids["bos"] if ids["bos"] is not None else -1
    eos = ids["eos"] if ids["eos"] is not None else -1
    add_bos = meta.get("tokenizer.ggml.add_bos_token", spec.add_bos if spec.add_bos is not None else False)
    try:
        return ByteLevelBPE(vocab, pairs, added=added, pre_tokenizer=chain(steps), ignore_merges=spec.ignore_merges,
                            prefix_ids=[bos] if bos >= 0 else [], suffix_ids=[eos] if eos >= 0 else [],
                            source=source, add_bos=bool(add_bos) and bos >= 0, stop_ids=stop_ids,
                            gguf_tables=(tokens, pairs, added, spec))   # what byte_level_json writes back out
    except ValueError as e:
        raise ModelFileError(f"{source}: {e}") from None


def byte_level_json(tok) -> str:
    """A GGUF's byte-level tokenizer as a Hugging Face tokenizer.json (HF `tokenizers` and our loader
    encode identically): each llama.cpp regex as a Split (gaps kept, as llama.cpp does), then
    ByteLevel without its own regex; the control tokens special; BOS put in front when the GGUF says so."""
    import json
    tokens, pairs, added, spec = tok.gguf_tables
    post = None
    if tok.add_bos and tok.bos_id >= 0:
        bos = tokens[tok.bos_id]
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [tok.bos_id], "tokens": [bos]}}}
    splits = [{"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": False} for r in spec.regexes]
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": a.id, "content": a.content, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": a.special} for a in added],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": splits + [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": spec.ignore_merges, "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": [list(p) for p in pairs]}}, ensure_ascii=False)

