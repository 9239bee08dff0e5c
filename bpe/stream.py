"""Streaming decode for byte-level tokenizers: text out as soon as it is final.

A token can end in the middle of a UTF-8 character (an emoji is often two or three tokens), so
the decoder holds back a trailing, still-unfinished character until the next token completes it
(or shows it never will). Everything it returns joins up to exactly the full decode.
"""
from .normalizer import utf8_char_size


def may_complete(data: bytes) -> bool:
    """True if the bytes are an unfinished UTF-8 character that more bytes could still make valid.

    >>> may_complete(b"\\xe2\\x82"), may_complete(b"\\xe2\\x41")
    (True, False)
    """
    lead = data[0]
    size = 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4 if lead >> 3 == 30 else 0
    if not size or len(data) >= size:
        return False
    missing = size - len(data)
    # the valid second bytes are 80-BF, A0-BF (E0), 80-9F (ED), 90-BF (F0), 80-8F (F4): one of these fits
    return any(utf8_char_size(data + bytes([fill]) * missing, 0) for fill in (0x80, 0x90, 0xA0))


def open_tail(data) -> int:
    """Where a trailing unfinished UTF-8 character starts (len(data) if there is none)."""
    for back in (1, 2, 3):
        pos = len(data) - back
        if pos < 0:
            break
        if data[pos] < 0x80:  # ASCII: nothing open
            break
        if data[pos] >= 0xC0:  # a lead byte: everything from here may still become one character
            return pos if may_complete(bytes(data[pos:])) else len(data)
    return len(data)


class ByteStreamDecoder:
    """`feed(id)` returns the new final text; `flush()` what is left. Invalid bytes become U+FFFD
    as Python's (and Rust's) lossy UTF-8 decoding puts them: one per maximal invalid stretch."""

    def __init__(self, bytes_of):
        self.bytes_of = bytes_of  # id -> bytes; raises ValueError for an unknown id
        self.pending = bytearray()

    def feed(self, i: int) -> str:
        """Take one id; return the text that is now final."""
        self.pending += self.bytes_of(i)
        cut = open_tail(self.pending)
        text = self.pending[:cut].decode("utf-8", errors="replace")
        del self.pending[:cut]
        return text

    def flush(self) -> str:
        """Return what is still held back (an unfinished character becomes U+FFFD)."""
        text = self.pending.decode("utf-8", errors="replace")
        self.pending.clear()
        return text
