"""The merges replayed: how a real tokenizer turns a text into its ids, one merge at a time.

For each chunk the tokenizer encodes on its own, the trace lists the starting symbols and every
merge in the order the tokenizer makes it, with the rule that chose it:
  SentencePiece BPE (Llama-2, TinyLlama): the adjacent pair whose joined piece has the highest
      score, leftmost on ties; pieces left unknown fall back to their UTF-8 bytes `<0x..>`.
  byte-level BPE (GPT-2, Llama-3, SmolLM2, Qwen2): the adjacent pair with the lowest merge rank,
      leftmost on ties, on the chunk's bytes in GPT-2's alphabet (`Ġ` is the space byte).
  characters: no merges; each character is its id.
The trace rescans every pair at every step (quadratic: for words and sentences, not books) and
ends at exactly the ids `tok.encode(text)` gives (tested on random text, both families).
"""
from .chars import CharTokenizer
from .model_file import UNUSED

ALTERNATIVES = 3  # other candidate pairs shown at each step


def merge_trace(tok, text: str) -> dict:
    """{"family", "rule", "chunks": [{"text", "symbols", "steps", "pieces", "ids"}], "ids"} for a text."""
    if isinstance(tok, CharTokenizer):
        chunks = [{"text": text, "symbols": list(text), "steps": [], "pieces": list(text), "ids": tok.encode(text)}]
        return {"family": "characters", "rule": "each character is a token", "chunks": chunks, "ids": tok.encode(text)}
    if hasattr(tok, "mergeable"):
        return _sentencepiece(tok, text)
    return _byte_level(tok, text)


def _replay(symbols: list[str], value, better, frozen=None) -> list[dict]:
    """Merge in place the best adjacent pair (by value(joined) or value(a, b)) until none is left."""
    steps = []
    while len(symbols) > 1:
        found = []
        for i in range(len(symbols) - 1):
            if frozen and (frozen[i] or frozen[i + 1]):
                continue
            v = value(symbols[i], symbols[i + 1])
            if v is not None:
                found.append((v, i))
        if not found:
            break
        best = found[0]
        for cand in found[1:]:
            if better(cand[0], best[0]):  # strict: the leftmost of equals wins
                best = cand
        v, at = best
        higher = better(1, 0)  # the rule: highest score or lowest rank first
        others = sorted((c for c in found if c is not best), key=lambda c: (-c[0] if higher else c[0], c[1]))
        steps.append({"at": at, "pair": [symbols[at], symbols[at + 1]], "merged": symbols[at] + symbols[at + 1],
                      "value": v, "alternatives": [[symbols[i], symbols[i + 1], w] for w, i in others[:ALTERNATIVES]]})
        symbols[at:at + 2] = [symbols[at] + symbols[at + 1]]
        if frozen:
            frozen[at:at + 2] = [False]
    return steps


def _sentencepiece(tok, text: str) -> dict:
    normalized = tok.normalize(text)
    parts = tok._chunk_re.findall(normalized) if tok._chunk_re is not None else ([normalized] if normalized else [])
    mergeable = tok.mergeable
    chunks, all_ids = [], []
    for part in parts:
        symbols = tok._symbol_re.findall(part) if tok.user_defined else list(part)
        frozen = [s in tok.user_defined for s in symbols] if tok.user_defined else None
        start = list(symbols)
        unused = {}

        def score(a, b):
            hit = mergeable.get(a + b)
            if hit is not None and tok.types[hit[1]] == UNUSED:
                unused[a + b] = (a, b)
            return None if hit is None else hit[0]
        steps = _replay(symbols, score, lambda x, y: x > y, frozen)
        ids: list[int] = []
        for piece in symbols:
            tok._emit(piece, unused, ids)
        chunks.append({"text": part, "symbols": start, "steps": steps, "pieces": [tok.id_to_piece(i) for i in ids],
                       "ids": ids})
        all_ids += ids
    if not tok.byte_fallback:  # as encode: a run of unknown pieces is one <unk>
        all_ids = [i for k, i in enumerate(all_ids) if i != tok.unk_id or k == 0 or all_ids[k - 1] != tok.unk_id]
    return {"family": "sentencepiece", "rule": "highest score first (score = -rank of the merge), leftmost on ties; "
            "unknown pieces become their UTF-8 bytes", "chunks": chunks, "ids": all_ids}


def _byte_level(tok, text: str) -> dict:
    chunks, all_ids = [], []
    id_of = tok.vocab
    for piece, tid in tok.added.split(text, special=False):
        if tid is not None:
            chunks.append({"text": tok.id_to_piece(tid), "symbols": [], "steps": [], "pieces": [tok.id_to_piece(tid)],
                           "ids": [tid], "added": True})
            all_ids.append(tid)
            continue
        for chunk in (tok.pre_tokenizer([piece]) if tok.pre_tokenizer else [piece]):
            if tok.ignore_merges and chunk in id_of:
                ids, steps, start = [id_of[chunk]], [], [chunk]
                note = "the whole chunk is in the vocabulary (ignore_merges)"
            else:
                symbols = [tok.pieces[i] for i in tok._symbols(chunk)]
                start, note = list(symbols), None

                def rank(a, b):
                    hit = tok.merges.get((id_of.get(a), id_of.get(b)))
                    return None if hit is None else hit[0]
                steps = _replay(symbols, rank, lambda x, y: x < y)
                ids = [id_of.get(s, tok.unk_id) for s in symbols]
            entry = {"text": chunk, "symbols": start, "steps": steps, "pieces": [tok.pieces[i] for i in ids], "ids": ids}
            if note:
                entry["note"] = note
            chunks.append(entry)
            all_ids += ids
    return {"family": "byte-level", "rule": "lowest merge rank first, leftmost on ties, on the UTF-8 bytes "
            "(shown in GPT-2's alphabet: Ġ is a space)", "chunks": chunks, "ids": all_ids}


def piece_bytes(tok, i: int) -> bytes:
    """The bytes a token stands for in text (a byte-fallback `<0x..>` piece is its byte; control tokens none)."""
    if hasattr(tok, "_bytes_of_id"):            # byte-level BPE
        return b"" if tok.is_control(i) else tok._bytes_of_id(i)
    if isinstance(tok, CharTokenizer):
        return tok.chars[i].encode("utf-8")
    if i in tok.id_to_byte:                     # SentencePiece byte fallback
        return bytes([tok.id_to_byte[i]])
    if tok.is_control(i) or i == tok.unk_id:
        return b""
    return tok.id_to_piece(i).replace("\u2581", " ").encode("utf-8")


def describe_tokens(tok, ids) -> list[dict]:
    """Each id as the page shows it: piece, readable text (or None when its bytes are part of a
    character), its bytes in hex, and whether it is a control/special token."""
    out = []
    for i in ids:
        data = piece_bytes(tok, i)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        out.append({"id": int(i), "piece": tok.id_to_piece(i), "text": text, "bytes": data.hex(" "),
                    "special": bool(tok.is_control(i))})
    return out


def boundaries(tok, ids) -> list[int]:
    """Byte offsets where one token ends and the next begins, in the text the tokens spell."""
    out, at = [], 0
    for i in ids:
        at += len(piece_bytes(tok, i))
        out.append(at)
    return out
