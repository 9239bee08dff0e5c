"""GPT-2's byte-to-unicode table: how byte-level vocabularies write bytes as text.

Byte-level BPE works on bytes, but its vocabulary is stored as text, so every byte gets a
printable character. The 188 bytes that are already printable and not a space ('!'..'~',
'¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 (controls, space, 0x7F-0xA0, 0xAD) take
the characters 256, 257, ... in byte order. So " " (0x20) is "Ġ" (U+0120) and "\n" is "Ċ":
" hello" is stored as "Ġhello".

>>> to_byte_chars(" héllo")   # é is C3 A9: two printable Latin-1 bytes
'ĠhÃ©llo'
"""

def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: byte -> the character that stands for it in the vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


_TRANSLATE = {b: c for b, c in BYTE_TO_CHAR.items()}  # code point of the latin-1 char -> table char


def to_byte_chars(text: str) -> str:
    """A chunk as byte-level vocabulary characters: its UTF-8 bytes, each by GPT-2's table.

    subtle: decoding the bytes as latin-1 gives one character per byte (code point = byte),
    which str.translate then maps through the table, all in C.
    """
    return text.encode("utf-8").decode("latin-1").translate(_TRANSLATE)


def token_bytes(token: str) -> bytes:
    """What a token decodes to under the ByteLevel decoder: its bytes by GPT-2's table, or, if any
    character is not in the table, the token's own UTF-8 (as HF does for added tokens)."""
    try:
        return bytes([CHAR_TO_BYTE[c] for c in token])
    except KeyError:
        return token.encode("utf-8")
