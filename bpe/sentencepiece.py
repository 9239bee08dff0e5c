"""The SentencePiece BPE tokenizer (TinyLlama / Llama-2): normalize, encode, decode, stream-decode.

Encoding follows SentencePiece exactly (bpe_model.cc):
  1. normalize: spaces become "▁", a dummy "▁" goes in front (identity normalization otherwise);
  2. split into characters;
  3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest score,
     the leftmost pair on ties (a heap for long inputs, so it stays O(n log n));
  4. characters that are not pieces become one <0xXX> byte piece per UTF-8 byte (byte fallback).
subtle: this is *not* "apply the merge list in order" and not "best total score".
Decoding turns "▁" back into spaces, drops the single leading space the dummy prefix added,
and decodes runs of byte pieces as UTF-8, one U+FFFD per invalid byte.
"""
import heapq
import re
from dataclasses import dataclass

from .interface import SpecialSettings
from .model_file import (BYTE, CONTROL, MODEL_TYPES, NORMAL, UNKNOWN, UNUSED, USER_DEFINED,
                         ModelFileError, ModelProto, load_model_proto)
from .normalizer import CharsMap, normalize, utf8_char_size
from .stream import may_complete

SPACE = "\u2581"  # ▁, SentencePiece's visible whitespace
REPLACEMENT = "\ufffd"
CACHE_CHUNK = 64          # chunks up to this many characters are remembered (words repeat) ...
CACHE_CHARS = 8_000_000   # ... and the cache is cleared once it holds this many characters
SHORT_CHUNK = 24  # chunks up to this length use the simple rescanning merge loop


@dataclass(frozen=True)
class HFDecoding:
    """How a SentencePiece-style tokenizer.json's decoder chain turns pieces back into text (HF's, not
    SentencePiece's own): `strip` leading spaces of the whole text removed (a Strip decoder), whether
    <0xXX> pieces become bytes (ByteFallback), and whether a Metaspace decoder drops the first token's "▁"s."""
    strip: int = 0
    byte_fallback: bool = True
    metaspace: bool = False


class SentencePieceTokenizer(SpecialSettings):
    """A SentencePiece BPE model: pieces with scores, and the exact SentencePiece encode/decode.

    Built complete: `add_bos` (SentencePiece models, Llama-2 and TinyLlama, run with BOS in front),
    `stop_ids` (default: EOS), and for a tokenizer.json `hf_decoding` and `hf_prepend` (HF's
    Metaspace "first" / "always": "▁" prepended only to text that does not start with a space,
    and with "first" only at the very start).
    """

    def __init__(self, proto: ModelProto, *, source: str = "model", add_bos: bool = True,
                 stop_ids: set[int] | None = None, hf_decoding: HFDecoding | None = None,
                 hf_prepend: str | None = None, raw_user_defined: bool = False):
        kind = proto.trainer.get("model_type", 1)
        if kind != 2:
            raise ModelFileError(f"{source}: a {MODEL_TYPES.get(kind, kind)} model; only BPE models are supported")
        norm = proto.normalizer
        try:
            self.charsmap = CharsMap(norm["precompiled_charsmap"]) if norm.get("precompiled_charsmap") else None
        except ValueError as e:
            raise ModelFileError(f"{source}: {e}") from None
        self.proto = proto
        self.source = source
        self.pieces = proto.pieces
        self.types = proto.types
        self.add_dummy_prefix = norm["add_dummy_prefix"]
        self.remove_extra_whitespaces = norm["remove_extra_whitespaces"]
        self.escape_whitespaces = norm["escape_whitespaces"]
        self.byte_fallback = proto.trainer["byte_fallback"]
        self.whitespace_suffix = proto.trainer["treat_whitespace_as_suffix"]
        self.unk_surface = proto.trainer["unk_surface"]

        # SentencePiece's two maps: mergeable pieces (normal, user-defined, unused) and reserved ones.
        self.mergeable: dict[str, tuple[float, int]] = {}
        self.reserved: dict[str, int] = {}
        for i, (piece, score, typ) in enumerate(zip(proto.pieces, proto.scores, proto.types)):
            if typ in (NORMAL, USER_DEFINED, UNUSED):
                self.mergeable[piece] = (score, i)
            else:
                self.reserved[piece] = i
        unknowns = [i for i, t in enumerate(proto.types) if t == UNKNOWN]
        if len(unknowns) != 1:
            raise ModelFileError(f"{source}: expected exactly one <unk> piece, found {len(unknowns)}")
        self.unk_id = unknowns[0]
        self.bos_id = self._control_id(proto.trainer["bos_piece"])
        self.eos_id = self._control_id(proto.trainer["eos_piece"])
        self.stop_ids = set(stop_ids) if stop_ids is not None else {self.eos_id} if self.eos_id >= 0 else set()
        self.add_bos = add_bos and self.bos_id >= 0
        self.hf_decoding, self.hf_prepend = hf_decoding, hf_prepend
        self.byte_ids = [self.piece_to_id(f"<0x{b:02X}>") for b in range(256)]
        if self.byte_fallback and any(self.types[i] != BYTE for i in self.byte_ids):
            raise ModelFileError(f"{source}: byte_fallback is on but the 256 <0xXX> byte pieces are missing")
        self.id_to_byte = {i: b for b, i in enumerate(self.byte_ids) if self.types[i] == BYTE}
        self.user_defined = sorted((p for p, t in zip(proto.pieces, proto.types) if t == USER_DEFINED),
                                   key=len, reverse=True)
        # subtle: HF's converter makes a GGUF vocabulary's user-defined pieces added tokens, cut out of the
        # text (spaces already "▁": Gemma's "  " matches " ▁" too) before any BPE; SentencePiece would
        # match them inside its own normalization instead
        self._raw_re, self._raw_ids = None, {}
        if raw_user_defined and self.user_defined:
            self._raw_ids = {u.replace(" ", SPACE): self.mergeable[u][1] for u in self.user_defined}
            self._raw_re = re.compile("(" + "|".join(re.escape(u) for u in sorted(self._raw_ids, key=len, reverse=True))
                                      + ")")
            self.user_defined = []
        self._symbol_re = re.compile("|".join([re.escape(u) for u in self.user_defined] + ["."]), re.S)
        self._chunk_re = self._chunker()
        self._score = {p: s for p, (s, _) in self.mergeable.items()}
        self._simple = not self.user_defined and UNUSED not in self.types  # no frozen or unused pieces
        self._cache: dict[str, list[int]] = {}
        self._cached_chars = 0

    def _chunker(self):
        """A regex cutting normalized text into chunks that no piece spans, or None if unsafe.

        subtle: a chunk can be encoded on its own (and cached) only if no merge can cross its
        edges. A piece never joins a non-"▁" character to a following "▁" (checked here: true for
        Llama, false for whitespace-as-suffix models), and characters that occur in no
        multi-character piece (newlines and digits in Llama) never merge at all.
        """
        multi = [p for p in self.mergeable if len(p) > 1]
        if self.user_defined or any(SPACE in p.lstrip(SPACE) for p in multi):
            return None
        merging = "".join(sorted({ch for p in multi for ch in p} - {SPACE}))
        cls = "".join("\\" + ch if ch in "\\]^-[" else ch for ch in merging)
        if not cls:
            return re.compile(f"{SPACE}+|.", re.S)
        return re.compile(f"{SPACE}*[{cls}]+|{SPACE}+|[^{cls}]", re.S)

    # --- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path) -> "SentencePieceTokenizer":
        """Load a SentencePiece `.model` file."""
        return cls(load_model_proto(path), source=str(path))

    @property
    def vocab_size(self) -> int:
        """Number of pieces (ids are 0 .. vocab_size-1)."""
        return len(self.pieces)

    def is_control(self, i: int) -> bool:
        """True for control pieces (<s>, </s>): they decode to nothing."""
        return self.types[i] == CONTROL

    def _control_id(self, piece: str) -> int:
        i = self.reserved.get(piece, -1)
        return i if i >= 0 and self.types[i] == CONTROL else -1

    def piece_to_id(self, piece: str) -> int:
        """The id of a piece string, or the <unk> id (reserved pieces first, as SentencePiece does)."""
        i = self.reserved.get(piece)
        if i is not None:
            return i
        hit = self.mergeable.get(piece)
        return hit[1] if hit else self.unk_id

    def id_to_piece(self, i: int) -> str:
        """The piece string of an id."""
        self._check_id(i)
        return self.pieces[i]

    # --- encoding ----------------------------------------------------------------------------
    def normalize(self, text: str, *, first: bool = True) -> str:
        """SentencePiece normalization: "▁" for spaces, the dummy prefix, optional space squeezing
        (and, for models that have one, the precompiled character map such as nmt_nfkc).
        `first`: the text starts the input (not after a special token), for HF's "first" scheme.

        >>> tok.normalize("Hello  world")            # doctest: +SKIP
        '▁Hello▁▁world'
        """
        prefix = self.add_dummy_prefix
        if self.hf_prepend is not None:
            prefix = prefix and not text.startswith((" ", SPACE)) and (first or self.hf_prepend == "always")
        if self.charsmap or self.user_defined:  # the general, byte-by-byte path
            return normalize(text, charsmap=self.charsmap, user_defined=self.user_defined,
                             add_dummy_prefix=prefix, escape_whitespaces=self.escape_whitespaces,
                             remove_extra_whitespaces=self.remove_extra_whitespaces,
                             whitespace_suffix=self.whitespace_suffix)
        if self.remove_extra_whitespaces:  # squeeze runs of " " and drop leading ones
            text = re.sub(" +", " ", text).lstrip(" ")
        if not text:
            return ""
        space = SPACE if self.escape_whitespaces else " "
        text = text.replace(" ", space)
        if prefix and not self.whitespace_suffix:
            text = space + text
        if self.remove_extra_whitespaces:
            # subtle: SentencePiece strips trailing "▁" after escaping, so a literal "▁" goes too
            text = text.rstrip(space)
        if prefix and self.whitespace_suffix:
            text = text + space
        return text

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, special: bool = False,
               literal=()) -> list[int]:
        """Encode text to ids exactly as SentencePiece does; BOS/EOS only when asked.

        With `special`, control pieces' text (`<s>`, `</s>`) becomes their ids (encode_with_special),
        except inside the (start, end) spans of `literal`.
        """
        if special:
            return self.encode_with_special(text, bos=bos, eos=eos, literal=literal)
        return self._encode(text, bos=bos, eos=eos)

    def _encode(self, text: str, *, bos: bool = False, eos: bool = False, first: bool = True) -> list[int]:
        ids = [self.bos_id] if bos and self.bos_id >= 0 else []
        if self._raw_re is None:
            ids += self._encode_text(text, first=first)
        else:                                   # user-defined pieces first (spaces as "▁")
            for k, part in enumerate(self._raw_re.split(text.replace(" ", SPACE))):
                if k % 2:
                    ids.append(self._raw_ids[part])
                elif part:
                    ids += self._encode_text(part, first=first and k == 0)
        if eos and self.eos_id >= 0:
            ids.append(self.eos_id)
        return ids

    def _encode_text(self, text: str, *, first: bool = True) -> list[int]:
        """Normalize, then BPE (in chunks no merge crosses, through the cache)."""
        ids: list[int] = []
        normalized = self.normalize(text, first=first)
        if self._chunk_re is None:
            ids += self._encode_chunk(normalized)
        else:
            cache = self._cache
            for chunk in self._chunk_re.findall(normalized):
                hit = cache.get(chunk)
                if hit is None:
                    hit = self._encode_chunk(chunk)
                    if len(chunk) <= CACHE_CHUNK:  # long chunks rarely repeat: never cached
                        if self._cached_chars > CACHE_CHARS:
                            cache.clear()
                            self._cached_chars = 0
                        cache[chunk] = hit
                        self._cached_chars += len(chunk)
                ids += hit
        if not self.byte_fallback:  # SentencePiece fuses a run of unknown pieces into one <unk>
            ids = [i for k, i in enumerate(ids) if i != self.unk_id or k == 0 or ids[k - 1] != self.unk_id]
        return ids

    def encode_pieces(self, text: str) -> list[str]:
        """Encode text to piece strings (spm_encode --output_format=piece)."""
        return [self.pieces[i] for i in self.encode(text)]

    def encode_with_special(self, text: str, *, bos: bool = False, eos: bool = False, literal=()) -> list[int]:
        """Encode text in which the control pieces' text (`<s>`, `</s>`) stands for their ids.

        The text between special tokens is encoded on its own, each stretch as a fresh
        SentencePiece input (so it gets its own dummy prefix), as Hugging Face's tokenizer.json
        does; that is how TinyLlama-Chat's template was tokenized in training. Inside the spans of
        `literal` (a chat message's content), a control piece's text is ordinary text.
        """
        specials = sorted((p for p, i in self.reserved.items() if self.types[i] == CONTROL), key=len, reverse=True)
        ids = [self.bos_id] if bos and self.bos_id >= 0 else []
        if specials:
            done = 0
            for m in re.finditer("|".join(map(re.escape, specials)), text):
                if any(s < m.end() and m.start() < e for s, e in literal):
                    continue
                ids += self._encode(text[done:m.start()], first=done == 0) + [self.reserved[m.group()]]
                done = m.end()
            ids += self._encode(text[done:], first=done == 0)
        else:
            ids += self.encode(text)
        if eos and self.eos_id >= 0:
            ids.append(self.eos_id)
        return ids

    def _encode_chunk(self, text: str) -> list[int]:
        """BPE on one normalized string: highest-scoring adjacent pair first, leftmost on ties."""
        if len(text) <= SHORT_CHUNK and self._simple:
            ids: list[int] = []
            for piece in self._merge_short(list(text)):
                self._emit(piece, {}, ids)
            return ids
        return self._merge_heap(text)

    def _merge_short(self, symbols: list[str]) -> list[str]:
        """The same merge order by rescanning all pairs each step: quicker for short words.

        >>> tok._merge_short(list("▁hello"))            # doctest: +SKIP
        ['▁hello']
        """
        score = self._score
        while len(symbols) > 1:
            best, at = None, -1
            for i in range(len(symbols) - 1):
                s = score.get(symbols[i] + symbols[i + 1])
                if s is not None and (best is None or s > best):  # strict: leftmost wins ties
                    best, at = s, i
            if at < 0:
                break
            symbols[at:at + 2] = [symbols[at] + symbols[at + 1]]
        return symbols

    def _merge_heap(self, text: str) -> list[int]:
        """BPE with a heap of candidate pairs, as SentencePiece does: O(n log n) for long inputs."""
        if not text:
            return []
        symbols = self._symbol_re.findall(text) if self.user_defined else list(text)
        n = len(symbols)
        frozen = [s in self.user_defined for s in symbols] if self.user_defined else None
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prev = list(range(-1, n - 1))
        mergeable = self.mergeable
        unused: dict[str, tuple[str, str]] = {}  # UNUSED pieces are split back after merging

        def candidate(left: int, right: int):
            if left < 0 or right < 0 or (frozen and (frozen[left] or frozen[right])):
                return None
            piece = symbols[left] + symbols[right]
            hit = mergeable.get(piece)
            if hit is None:
                return None
            if self.types[hit[1]] == UNUSED:
                unused[piece] = (symbols[left], symbols[right])
            return (-hit[0], left, right, len(piece))

        heap = [c for c in (candidate(i, i + 1) for i in range(n - 1)) if c]
        heapq.heapify(heap)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            a, b = symbols[left], symbols[right]
            if not a or not b or len(a) + len(b) != size:
                continue  # stale: one side was merged into something else meanwhile
            symbols[left], symbols[right] = a + b, ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            for c in (candidate(prev[left], left), candidate(left, nxt[left])):
                if c:
                    heapq.heappush(heap, c)

        ids: list[int] = []
        i = 0
        while i != -1:
            self._emit(symbols[i], unused, ids)
            i = nxt[i]
        return ids

    def _emit(self, piece: str, unused: dict, ids: list[int]) -> None:
        if piece in unused:
            left, right = unused[piece]
            self._emit(left, unused, ids)
            self._emit(right, unused, ids)
            return
        i = self.piece_to_id(piece)
        if i == self.unk_id and self.byte_fallback:
            ids.extend(self.byte_ids[b] for b in piece.encode("utf-8"))
        else:
            ids.append(i)

    # --- decoding ----------------------------------------------------------------------------
    def _check_id(self, i) -> None:
        if not isinstance(i, int) or not 0 <= i < len(self.pieces):
            raise ValueError(f"id {i!r} is out of range (vocabulary has {len(self.pieces)} pieces)")

    def decode(self, ids) -> str:
        """Decode ids to text exactly as SentencePiece does (or, for a tokenizer.json, as HF does)."""
        stream = self.stream_decoder()
        return "".join([stream.feed(i) for i in ids]) + stream.flush()

    def _decode_piece(self, i: int, is_bos_ws: bool) -> tuple[str, bool]:
        """One non-byte piece as text; the flag says whether it consumed the leading space."""
        typ = self.types[i]
        if typ == CONTROL:
            return "", False
        if typ == UNKNOWN:
            return self.unk_surface, False
        piece = self.pieces[i]
        stripped = False
        if is_bos_ws and (self.add_dummy_prefix or self.remove_extra_whitespaces) and piece.startswith(SPACE):
            piece, stripped = piece[1:], not self.remove_extra_whitespaces
        return piece.replace(SPACE, " "), stripped

    def stream_decoder(self):
        """A decoder that takes ids one at a time and yields text as soon as it is final."""
        return HFStreamDecoder(self) if self.hf_decoding is not None else SentencePieceStreamDecoder(self)

    def hf_files(self) -> dict[str, bytes]:
        """{"tokenizer.model": the SentencePiece model}: transformers' LlamaTokenizer reads it."""
        return {"tokenizer.model": self.proto.to_bytes()}


def _utf8_or_replacements(run: bytearray) -> str:
    try:
        return run.decode("utf-8")
    except UnicodeDecodeError:
        return REPLACEMENT * len(run)


def decode_bytes(data: bytes) -> str:
    """UTF-8 decode as SentencePiece does: each byte that starts no valid character becomes U+FFFD.

    >>> decode_bytes(b"a\xe2\x82\xacb\xe2\x82")
    'a€b\ufffd\ufffd'
    """
    out, pos = [], 0
    while pos < len(data):
        size = utf8_char_size(data, pos)
        out.append(data[pos:pos + size].decode("utf-8") if size else REPLACEMENT)
        pos += size or 1
    return "".join(out)


class SentencePieceStreamDecoder:
    """Decode ids one at a time: `feed(id)` returns the new text, holding back partial characters.

    Everything returned by `feed` and then `flush` joins up to exactly `decode(ids)`.
    """

    def __init__(self, tokenizer: SentencePieceTokenizer):
        self.tok = tokenizer
        self.pending = bytearray()  # byte pieces not yet decoded
        self.text_empty = True      # nothing visible decoded yet (decides the leading-space strip)
        self.bos_ws_seen = False    # a piece already consumed the dummy-prefix space

    def feed(self, i: int) -> str:
        """Take one id; return the text that is now final."""
        self.tok._check_id(i)
        b = self.tok.id_to_byte.get(i)
        if b is not None:
            self.pending.append(b)
            pos = 0
            while pos < len(self.pending):  # walk as SentencePiece will, stopping at an open character
                size = utf8_char_size(self.pending, pos)
                if not size and may_complete(bytes(self.pending[pos:])):
                    break
                pos += size or 1
            return self._take_bytes(pos)
        text = self._take_bytes(len(self.pending))
        is_bos_ws = not self.bos_ws_seen and self.text_empty
        piece, self.bos_ws_seen = self.tok._decode_piece(i, is_bos_ws)
        self.text_empty = self.text_empty and not piece
        return text + piece

    def flush(self) -> str:
        """Return what is still held back (an unfinished character becomes U+FFFD per byte)."""
        return self._take_bytes(len(self.pending))

    def _take_bytes(self, n: int) -> str:
        text = decode_bytes(bytes(self.pending[:n]))
        del self.pending[:n]
        self.text_empty = self.text_empty and not text
        return text


class HFStreamDecoder:
    """HF's decoder chain for SentencePiece-style tokenizer.json files, one id at a time:
    "▁" -> " ", control and unknown pieces as their text, each run of <0xXX> pieces as UTF-8
    (subtle: one bad byte makes the whole run U+FFFDs, so a run is held until it ends), and
    `strip` leading spaces of the whole text removed (HF's Strip decoder). A Metaspace decoder
    instead drops every "▁" of the first token, and leaves <0xXX> pieces as text."""

    def __init__(self, tokenizer: SentencePieceTokenizer):
        self.tok = tokenizer
        self.run = bytearray()
        self.hf = tokenizer.hf_decoding
        self.strip = self.hf.strip
        self.first = True  # the next token is the first (a Metaspace decoder drops its every "▁")

    def feed(self, i: int) -> str:
        """Take one id; return the text that is now final."""
        self.tok._check_id(i)
        b = self.tok.id_to_byte.get(i) if self.hf.byte_fallback else None
        if b is not None:
            self.run.append(b)
            self.first = False
            return ""
        piece = self.tok.pieces[i]
        piece = piece.replace(SPACE, "") if self.first and self.hf.metaspace else piece.replace(SPACE, " ")
        self.first = False
        return self._emit(self._flush_run() + piece)

    def _flush_run(self) -> str:
        text = _utf8_or_replacements(self.run) if self.run else ""
        self.run.clear()
        return text

    def flush(self) -> str:
        """Return what is still held back."""
        return self._emit(self._flush_run())

    def _emit(self, text: str) -> str:
        while self.strip and text:
            self.strip -= 1
            if text.startswith(" "):
                text = text[1:]
            else:
                self.strip = 0
        return text
