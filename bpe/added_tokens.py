"""Added tokens: strings cut out of the text whole, before any BPE, as Hugging Face does.

`<|im_start|>`, `<|endoftext|>`, `<|eot_id|>` are added tokens. Each has flags:
  special      a control token; with `special=False` encoding, its text is ordinary text
  lstrip       swallows the whitespace on its left     rstrip   ... on its right
  single_word  matches only when no word character touches it
  normalized   matched in the normalized text (else in the raw text, before normalizing)
Matching is leftmost-longest, left to right, never overlapping (HF's Aho-Corasick automaton).
"""
from dataclasses import dataclass

import regex

from .pipeline import WHITESPACE


@dataclass(frozen=True)
class AddedToken:
    """One added token and its flags."""
    id: int
    content: str
    special: bool = False
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = False


WORD_CHAR = regex.compile(r"[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]")  # Rust regex's \w


def _is_word_char(ch: str) -> bool:
    return WORD_CHAR.match(ch) is not None


class AddedTokens:
    """Cuts text at added tokens: `split(text)` gives [(text, None) or (None, id)] in order."""

    def __init__(self, tokens: list[AddedToken], normalizer=None):
        self.tokens = {t.content: t for t in tokens if t.content}
        self.normalizer = normalizer
        self.by_id = {t.id: t for t in tokens}
        raw = [t.content for t in tokens if t.content and (not t.normalized or normalizer is None)]
        norm = {(normalizer(t.content) if normalizer else t.content): t
                for t in tokens if t.content and t.normalized and normalizer is not None}
        self._raw = self._automaton(raw)
        self._norm = self._automaton(list(norm))
        self._norm_tokens = norm
        # with special=False, special tokens are skipped; when every added token is special there
        # is nothing left to find (HF still scans, but a skipped match cannot change the result)
        self._all_special = all(t.special for t in tokens)

    @staticmethod
    def _automaton(strings):
        """A regex that finds the leftmost-longest of the strings (longest alternative first)."""
        if not strings:
            return None
        return regex.compile("|".join(regex.escape(s) for s in sorted(set(strings), key=len, reverse=True)))

    def split(self, text: str, *, special: bool, literal=()) -> list[tuple[str | None, int | None]]:
        """Cut text into stretches to encode (normalized already) and added-token ids.

        `literal`: (start, end) spans of `text` in which a special token's text stays ordinary text
        (a chat message's content: only the template's own markers become special ids).
        """
        if not special and self._all_special:
            piece = self.normalizer(text) if self.normalizer else text
            return [(piece, None)] if piece else []
        out = []
        for piece, tid, at in self._find(text, self._raw, self.tokens, special, literal):
            if tid is not None:
                out.append((None, tid))
                continue
            if self.normalizer:
                # subtle: offsets move under normalization; a stretch that holds literal text finds no special token
                plain = any(s < at + len(piece) and at < e for s, e in literal)
                piece = self.normalizer(piece)
                if self._norm:
                    out += [(p, i) for p, i, _ in self._find(piece, self._norm, self._norm_tokens, special and not plain)]
                    continue
            out.append((piece, None))
        return [(p, i) for p, i in out if i is not None or p]

    @staticmethod
    def _find(text, automaton, tokens, special, literal=()):
        """[(stretch, None, offset) or (None, id, offset)] in order."""
        if automaton is None:
            return [(text, None, 0)]
        out, done = [], 0
        for m in automaton.finditer(text):
            token = tokens[m.group()]
            start, stop = m.start(), m.end()
            if token.special and (not special or any(s < stop and start < e for s, e in literal)):
                continue
            if token.single_word and ((start > 0 and _is_word_char(text[start - 1])) or
                                      (stop < len(text) and _is_word_char(text[stop]))):
                continue
            if token.lstrip:
                while start > done and text[start - 1] in WHITESPACE:
                    start -= 1
            if token.rstrip:
                while stop < len(text) and text[stop] in WHITESPACE:
                    stop += 1
            if start > done:
                out.append((text[done:start], None, done))
            out.append((None, token.id, start))
            done = stop
        if done < len(text):
            out.append((text[done:], None, done))
        return out
