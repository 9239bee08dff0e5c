"""SentencePiece's general normalizer: precompiled character maps (e.g. nmt_nfkc) and user symbols.

spm_train's default normalization (nmt_nfkc) ships as a "precompiled charsmap": a darts-clone
double-array trie over UTF-8 byte strings, whose values point into a blob of NUL-terminated
replacement strings. Normalizing walks the input: at each position take the longest rule that
matches (user-defined symbols first, copied as they are), else copy one UTF-8 character (an
invalid byte becomes U+FFFD), then apply the whitespace rules. Llama's identity normalization
needs none of this; tokenizer.py has a fast path for it.
"""
import struct

import numpy as np

SPACE = "\u2581".encode()
REPLACEMENT = "\ufffd".encode()


class CharsMap:
    """A precompiled charsmap: `<u32 trie size><double-array units><replacement strings>`."""

    def __init__(self, blob: bytes):
        if len(blob) <= 4:
            raise ValueError("precompiled charsmap is too short")
        (size,) = struct.unpack("<I", blob[:4])
        if size >= len(blob) - 4 + 1 or size % 4:
            raise ValueError("precompiled charsmap is broken")
        self.units = np.frombuffer(blob[4:4 + size], dtype="<u4").astype(np.int64).tolist()
        self.strings = blob[4 + size:]

    def longest_match(self, data: bytes, pos: int) -> tuple[int, bytes] | None:
        """The longest rule matching data[pos:]: (bytes consumed, replacement), or None.

        Walks the double array: each unit packs has_leaf (bit 8), a label (low byte, bit 31)
        and an offset to its children; a leaf's child unit holds the value (an index into strings).
        """
        units, node = self.units, 0
        node ^= _offset(units[0])
        best = None
        for i in range(pos, len(data)):
            byte = data[i]
            node ^= byte
            if node >= len(units):
                break
            unit = units[node]
            if unit & ((1 << 31) | 0xFF) != byte:
                break
            node ^= _offset(unit)
            if (unit >> 8) & 1:
                value = units[node] & ((1 << 31) - 1)
                end = self.strings.index(b"\0", value)
                best = (i + 1 - pos, self.strings[value:end])
        return best


def utf8_char_size(data: bytes, pos: int) -> int:
    """Byte length of the valid UTF-8 character at data[pos], 0 if there is none (strict UTF-8)."""
    lead = data[pos]
    size = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4 if lead >> 3 == 30 else 0
    if size == 0 or pos + size > len(data):
        return 0
    try:
        data[pos:pos + size].decode("utf-8")
    except UnicodeDecodeError:
        return 0
    return size


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def _one_char(data: bytes, pos: int) -> tuple[int, bytes]:
    """One UTF-8 character at pos, or (1, U+FFFD) for a byte that starts none."""
    size = utf8_char_size(data, pos)
    return (size, data[pos:pos + size]) if size else (1, REPLACEMENT)


def normalize(text: str, *, charsmap: CharsMap | None, user_defined: list[str], add_dummy_prefix: bool,
              remove_extra_whitespaces: bool, escape_whitespaces: bool, whitespace_suffix: bool) -> str:
    """SentencePiece's Normalizer::Normalize, step for step, on the UTF-8 bytes of text."""
    data = text.encode("utf-8", errors="surrogatepass")
    symbols = sorted((u.encode() for u in user_defined), key=len, reverse=True)

    def prefix(pos):
        for u in symbols:
            if data.startswith(u, pos):
                return len(u), u
        hit = charsmap.longest_match(data, pos) if charsmap else None
        return hit if hit else _one_char(data, pos)

    pos = 0
    if remove_extra_whitespaces:
        while pos < len(data):
            n, piece = prefix(pos)
            if piece != b" ":
                break
            pos += n
    if pos >= len(data):
        return ""
    space = SPACE if escape_whitespaces else b" "
    out = bytearray()
    if add_dummy_prefix and not whitespace_suffix:
        out += space
    prev_space = remove_extra_whitespaces
    while pos < len(data):
        n, piece = prefix(pos)
        pos += n
        while prev_space and piece.startswith(b" "):
            piece = piece[1:]
        if piece:
            out += piece.replace(b" ", space) if escape_whitespaces else piece
            prev_space = piece.endswith(b" ")
        if not remove_extra_whitespaces:
            prev_space = False
    if remove_extra_whitespaces:
        while out.endswith(space):
            del out[-len(space):]
    if add_dummy_prefix and whitespace_suffix:
        out += space
    return out.decode("utf-8")
