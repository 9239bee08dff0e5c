"""tiktoken rank files: one `base64(token bytes) rank` per line (OpenAI's encodings, and Meta's
original Llama-3 `tokenizer.model`), encoded as `tiktoken` does.

A rank file lists tokens, not merges. tiktoken's rule: repeatedly join the adjacent pair whose
joined bytes have the lowest rank. minbpe's lesson is that the merges can be recovered from the
ranks: a token of rank r is made by joining two shorter tokens, and (with the pair rank being the
joined token's rank) "any pair whose join is a token" is exactly a merge table. So every way of
cutting a token into two tokens becomes a merge of that token's rank, and the same merge loop as
tokenizer.json files (bpe/bytelevel.py) encodes it. The regex is not in the file: `--pattern`
names it (bpe/patterns.py).
"""
import base64
import binascii

import regex

from .bytelevel import ByteLevelBPE
from .model_file import ModelFileError
from .patterns import NAMED
from .pipeline import BYTE_TO_CHAR, regex_to_bytes


def looks_like_rank_file(data: bytes) -> bool:
    """True if the first line has the form `base64 rank`."""
    first = data.split(b"\n", 1)[0].strip()
    return bool(regex.fullmatch(rb"[A-Za-z0-9+/]+=*\s+[0-9]+", first))


def parse_ranks(data: bytes, source: str) -> dict[bytes, int]:
    """{token bytes: rank}; ModelFileError naming the line of the first problem."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError("expected `base64 rank`")
            token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
        except (ValueError, binascii.Error) as e:
            raise ModelFileError(f"{source}: line {number} is not `base64 rank` ({e})") from None
        if not token or rank < 0 or token in ranks:
            raise ModelFileError(f"{source}: line {number}: empty or repeated token, or negative rank")
        ranks[token] = rank
    if len(set(ranks.values())) != len(ranks):
        raise ModelFileError(f"{source}: two tokens share a rank")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ModelFileError(f"{source}: byte 0x{missing[0]:02X} has no token (a rank file covers all 256 bytes)")
    return ranks


def load_rank_file(path, pattern: str | None, data: bytes | None = None) -> ByteLevelBPE:
    """Build a byte-level tokenizer from a tiktoken rank file and a named regex."""
    if pattern is None:
        raise ModelFileError(f"missing: {path} is a tiktoken rank file, which does not say its regex "
                             f"(give one of {'|'.join(NAMED)})", "pattern")
    if pattern not in NAMED:
        raise ModelFileError(f"{pattern!r} is not a known pattern (known: {', '.join(NAMED)})", "pattern")
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    ranks = parse_ranks(data, str(path))
    chars = {t: "".join(BYTE_TO_CHAR[b] for b in t) for t in ranks}
    merges, merge_ranks = [], []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        for k in range(1, len(token)):
            if token[:k] in ranks and token[k:] in ranks:
                merges.append((chars[token[:k]], chars[token[k:]]))
                merge_ranks.append(rank)
    return ByteLevelBPE({chars[t]: r for t, r in ranks.items()}, merges, ranks=merge_ranks,
                        pre_tokenizer=regex_to_bytes(NAMED[pattern]),
                        source=str(path))
