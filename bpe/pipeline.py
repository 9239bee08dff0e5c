"""The steps around a byte-level BPE model, as Hugging Face `tokenizers` names them.

  text -> normalizer (NFC, NFKC, Replace, ...) -> pre-tokenizer (Split, ByteLevel, Digits, ...)
       -> chunks -> the BPE model merges inside each chunk

A normalizer here is a function str -> str; a pre-tokenizer a function list[str] -> list[str]
that cuts every chunk further. `normalizer_from_json` / `pre_tokenizer_from_json` build them
from a tokenizer.json's objects and raise SpecError naming anything we do not support.

The ByteLevel step maps each chunk's bytes to vocabulary characters with GPT-2's table
(bpe/byte_table.py).
"""
import unicodedata

import regex

from .byte_table import BYTE_TO_CHAR, CHAR_TO_BYTE, to_byte_chars, token_bytes  # noqa: F401
from .patterns import GPT2

WHITESPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}  # Unicode White_Space (Rust's \s)


class SpecError(ValueError):
    """A tokenizer.json part that is malformed or not supported, named."""


# --- normalizers ---------------------------------------------------------------------------------
def normalizer_from_json(spec):
    """A function str -> str for a tokenizer.json normalizer (None: identity)."""
    if spec is None:
        return None
    kind = _kind(spec, "normalizer")
    if kind in ("NFC", "NFD", "NFKC", "NFKD"):
        return lambda s: unicodedata.normalize(kind, s)
    if kind == "Lowercase":
        return str.lower
    if kind == "Replace":
        find = _pattern(spec, "Replace normalizer")
        content = _string(spec, "content", "Replace normalizer")
        return lambda s: find.sub(lambda m: content, s)
    if kind == "Prepend":
        prepend = _string(spec, "prepend", "Prepend normalizer")
        return lambda s: prepend + s if s else s
    if kind == "Strip":
        left, right = bool(spec.get("strip_left", True)), bool(spec.get("strip_right", True))
        return lambda s: _strip(s, left, right)
    if kind == "Sequence":
        return chain([normalizer_from_json(n) for n in _list(spec, "normalizers", "Sequence normalizer")])
    raise SpecError(f"normalizer {kind!r} is not supported")


def chain(steps):
    """One function applying each step (None steps skipped) to the previous one's result."""
    steps = [f for f in steps if f]

    def sequence(value):
        for f in steps:
            value = f(value)
        return value
    return sequence


def _strip(s: str, left: bool, right: bool) -> str:
    ws = "".join(WHITESPACE)
    s = s.lstrip(ws) if left else s
    return s.rstrip(ws) if right else s


# --- pre-tokenizers ------------------------------------------------------------------------------
def split_pieces(text: str, pattern, behavior: str = "Isolated", invert: bool = False) -> list[str]:
    """Cut text by a regex the way HF's Split does; the gaps between matches are pieces too.

    Isolated: every match and every gap is a piece. Removed: matches are dropped.
    MergedWithPrevious / MergedWithNext: a match joins the gap before / after it.
    Contiguous: adjacent matches join into one piece. `invert` swaps matches and gaps.
    """
    if behavior == "Isolated" and not invert:  # the common case: when the matches cover the text, they are the pieces
        found = pattern.findall(text) if pattern.groups == 0 else None
        if found is not None and sum(map(len, found)) == len(text):
            return [f for f in found if f]
    marks, last = [], 0  # (start, end, is_match)
    for m in pattern.finditer(text):
        if m.start() > last:
            marks.append((last, m.start(), invert))
        marks.append((m.start(), m.end(), not invert))
        last = m.end()
    if last < len(text):
        marks.append((last, len(text), invert))
    out: list[list[int]] = []
    previous = False
    if behavior == "MergedWithNext":
        for start, end, match in reversed(marks):
            if match and not previous and out:
                out[-1][0] = start
            else:
                out.append([start, end])
            previous = match
        out.reverse()
    else:
        for start, end, match in marks:
            if behavior == "Removed" and match:
                continue
            joins = (behavior == "MergedWithPrevious" and match and not previous) or \
                    (behavior == "Contiguous" and match and previous)
            if joins and out:
                out[-1][1] = end
            else:
                out.append([start, end])
            previous = match
    return [text[a:b] for a, b in out if b > a]


def pre_tokenizer_from_json(spec):
    """A function list[str] -> list[str] for a tokenizer.json pre-tokenizer (None: no cutting)."""
    if spec is None:
        return None
    kind = _kind(spec, "pre_tokenizer")
    if kind == "Sequence":
        return chain([pre_tokenizer_from_json(p) for p in _list(spec, "pretokenizers", "Sequence pre_tokenizer")])
    if kind == "ByteLevel":
        return byte_level(add_prefix_space=bool(spec.get("add_prefix_space", False)),
                          use_regex=bool(spec.get("use_regex", True)))
    if kind == "Split":
        behavior = spec.get("behavior", "Isolated")
        if behavior not in ("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"):
            raise SpecError(f"Split behavior {behavior!r} is not supported")
        pattern, invert = _pattern(spec, "Split pre_tokenizer"), bool(spec.get("invert", False))
        return lambda pieces: [q for p in pieces for q in split_pieces(p, pattern, behavior, invert)]
    if kind == "Digits":
        # Rust's char::is_numeric is the N categories: Nd, Nl, No
        numeric = regex.compile(r"\p{N}" if spec.get("individual_digits") else r"\p{N}+")
        return lambda pieces: [q for p in pieces for q in split_pieces(p, numeric)]
    if kind == "Punctuation":
        punct = regex.compile(r"[\p{P}!-/:-@\[-`{-~]")
        behavior = spec.get("behavior", "Isolated")
        return lambda pieces: [q for p in pieces for q in split_pieces(p, punct, behavior)]
    if kind == "WhitespaceSplit":
        return lambda pieces: [q for p in pieces for q in regex.findall(r"[^\s]+", p)]
    if kind == "Whitespace":
        return lambda pieces: [q for p in pieces for q in regex.findall(r"\w+|[^\w\s]+", p)]
    raise SpecError(f"pre_tokenizer {kind!r} is not supported")


def regex_split(pattern: str):
    """A pre-tokenizer that cuts every piece by a regex, keeping the gaps (HF's Split, Isolated)."""
    split = regex.compile(pattern)
    return lambda pieces: [q for p in pieces for q in split_pieces(p, split)]


def regex_to_bytes(pattern: str):
    """The pre-tokenizer of tiktoken files and our trained models: cut by a regex (gaps kept),
    then each chunk to byte-level characters."""
    split = regex.compile(pattern)
    return lambda pieces: [to_byte_chars(q) for p in pieces for q in split_pieces(p, split)]


def byte_level(*, add_prefix_space: bool = False, use_regex: bool = True):
    """HF's ByteLevel pre-tokenizer: optional leading space, GPT-2's regex, then GPT-2's byte table."""
    split = regex.compile(GPT2)

    def step(pieces):
        out = []
        for p in pieces:
            if add_prefix_space and p and not p.startswith(" "):
                p = " " + p
            out += split_pieces(p, split) if use_regex else ([p] if p else [])
        return [to_byte_chars(p) for p in out]
    step.byte_level = True
    return step


# --- checking JSON shapes ------------------------------------------------------------------------
def _kind(spec, what) -> str:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise SpecError(f"{what} must be an object with a string 'type', got {str(spec)[:60]!r}")
    return spec["type"]


def _list(spec, key, what) -> list:
    value = spec.get(key)
    if not isinstance(value, list):
        raise SpecError(f"{what}: '{key}' must be a list")
    return value


def _string(spec, key, what) -> str:
    value = spec.get(key)
    if not isinstance(value, str):
        raise SpecError(f"{what}: '{key}' must be a string")
    return value


def _pattern(spec, what):
    """The compiled regex of a {"String": s} or {"Regex": r} pattern."""
    pattern = spec.get("pattern")
    if isinstance(pattern, dict) and isinstance(pattern.get("String"), str):
        return regex.compile(regex.escape(pattern["String"]))
    if isinstance(pattern, dict) and isinstance(pattern.get("Regex"), str):
        try:
            return regex.compile(pattern["Regex"])
        except (regex.error, RecursionError) as e:
            raise SpecError(f"{what}: invalid regex ({e})") from None
    raise SpecError(f"{what}: 'pattern' must be {{\"String\": ...}} or {{\"Regex\": ...}}")
