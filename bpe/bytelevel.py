"""Byte-level BPE (GPT-2, Llama-3, SmolLM2, Qwen2, tiktoken): the second tokenizer family.

What differs from SentencePiece (bpe/sentencepiece.py), side by side:
  spaces     SentencePiece writes "▁" in front of a word; here a space is just the byte 0x20,
             shown as "Ġ" in the vocabulary (GPT-2's byte table, bpe/pipeline.py).
  unknowns   SentencePiece falls back to <0xXX> byte pieces; here every text is bytes already,
             so nothing is unknown (a byte with no token in the vocabulary is dropped, as HF does).
  order      SentencePiece merges the pair whose joined piece scores highest; here the pair
             with the lowest merge rank, leftmost on ties (the order the merges were learned).
  chunks     a regex cuts the text first (bpe/patterns.py) and no merge crosses a cut.

Encoding: added tokens are cut out whole (bpe/added_tokens.py), each stretch between them is
normalized and pre-tokenized into chunks, each chunk is merged. Decoding joins the tokens' bytes
and reads them as UTF-8, one U+FFFD per invalid stretch, exactly where HF puts it.
"""
import heapq

from .added_tokens import AddedTokens
from .interface import SpecialSettings
from .pipeline import token_bytes
from .stream import ByteStreamDecoder

SHORT_CHUNK = 32           # chunks up to this many symbols use the simple rescanning loop
CACHE_CHUNK = 64           # only chunks up to this many characters are cached ...
CACHE_CHARS = 8_000_000    # ... and the cache is cleared once it holds this many characters


class ByteLevelBPE(SpecialSettings):
    """A byte-level BPE tokenizer: vocabulary, ranked merges, and the steps around them.

    Built complete: `add_bos` (whether the model's own settings put BOS in front), `stop_ids`, and
    for a GGUF's vocabulary `gguf_tables` (what bpe/gguf_vocab.py byte_level_json writes back out).
    """

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, ranks: list[int] | None = None,
                 added: list = (),
                 normalizer=None, pre_tokenizer=None, byte_level: bool = True, ignore_merges: bool = False,
                 unk_token: str | None = None, fuse_unk: bool = False, prefix_ids=(), suffix_ids=(),
                 source: str = "tokenizer", add_bos: bool = False, stop_ids=(), gguf_tables: tuple | None = None):
        self.source = source
        self.add_bos, self.gguf_tables = add_bos, gguf_tables
        self.vocab = dict(vocab)
        self.normalizer = normalizer
        self.pre_tokenizer = pre_tokenizer
        self.byte_level = byte_level
        self.ignore_merges = ignore_merges
        self.unk_id = self.vocab.get(unk_token) if unk_token is not None else None
        self.fuse_unk = fuse_unk
        # merges[(left id, right id)] = (rank, merged id); rank = position in the list unless given
        # (a pair listed twice keeps its last rank, as HF's merge map does)
        self.merges: dict[tuple[int, int], tuple[int, int]] = {}
        for k, (a, b) in enumerate(merges):
            ids = (self.vocab.get(a), self.vocab.get(b), self.vocab.get(a + b))
            if None in ids:
                raise ValueError(f"merge {k} ({a[:20]!r} {b[:20]!r}) uses a token that is not in the vocabulary")
            self.merges[ids[:2]] = (ranks[k] if ranks else k, ids[2])
        self.added = AddedTokens(list(added), normalizer)
        self.pieces: dict[int, str] = {i: t for t, i in self.vocab.items()}
        self.pieces.update({t.id: t.content for t in added})
        self.size = max(self.pieces, default=-1) + 1
        to_bytes = token_bytes if byte_level else (lambda t: t.encode("utf-8"))
        self.bytes_of = {i: to_bytes(t) for i, t in self.pieces.items()}
        self.special_ids = {t.id for t in added if t.special}
        self.prefix_ids, self.suffix_ids = list(prefix_ids), list(suffix_ids)
        self.bos_id = self.prefix_ids[0] if self.prefix_ids else -1
        self.eos_id = self.suffix_ids[-1] if self.suffix_ids else -1
        self.stop_ids: set[int] = set(stop_ids)
        self._cache: dict[str, list[int]] = {}
        self._cached_chars = 0

    # --- the interface shared with SentencePieceTokenizer (bpe/interface.py) ------------------
    @property
    def vocab_size(self) -> int:
        """One more than the largest id (vocabulary and added tokens)."""
        return self.size

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, special: bool = False,
               literal=()) -> list[int]:
        """Text to ids; with `special`, special tokens' text becomes their ids (HF's default), except
        inside the (start, end) spans of `literal`."""
        ids = list(self.prefix_ids) if bos else []
        for piece, tid in self.added.split(text, special=special, literal=literal):
            if tid is not None:
                ids.append(tid)
                continue
            chunks = self.pre_tokenizer([piece]) if self.pre_tokenizer else [piece]
            for chunk in chunks:
                ids += self.encode_chunk(chunk)
        return ids + list(self.suffix_ids) if eos else ids

    def hf_files(self) -> dict[str, bytes]:
        """{"tokenizer.json": ...} for a GGUF's vocabulary; ValueError for others (their own file is kept)."""
        if self.gguf_tables is None:
            raise ValueError(f"{self.source}: this byte-level tokenizer has no tokenizer.json form of its own")
        from .gguf_vocab import byte_level_json   # subtle: gguf_vocab builds ByteLevelBPEs, so imported here
        return {"tokenizer.json": byte_level_json(self).encode("utf-8")}

    def encode_chunk(self, chunk: str) -> list[int]:
        """One pre-tokenized chunk (in vocabulary characters) to ids, through the cache."""
        hit = self._cache.get(chunk)
        if hit is not None:
            return hit
        ids = self._merge(chunk)
        if len(chunk) <= CACHE_CHUNK:
            if self._cached_chars > CACHE_CHARS:
                self._cache.clear()
                self._cached_chars = 0
            self._cache[chunk] = ids
            self._cached_chars += len(chunk)
        return ids

    def decode(self, ids) -> str:
        """Ids to text as HF's decode(skip_special_tokens=False): special tokens as their text."""
        stream = self.stream_decoder()
        return "".join([stream.feed(i) for i in ids]) + stream.flush()

    def stream_decoder(self) -> ByteStreamDecoder:
        """A decoder fed one id at a time that never splits a UTF-8 character."""
        return ByteStreamDecoder(self._bytes_of_id)

    def id_to_piece(self, i: int) -> str:
        """The vocabulary's own string for an id ("Ġhello" for " hello")."""
        self._bytes_of_id(i)
        return self.pieces[i]

    def piece_to_id(self, piece: str) -> int | None:
        """The id of a vocabulary string (or added token), or None."""
        hit = self.vocab.get(piece)
        if hit is None and piece in self.added.tokens:
            hit = self.added.tokens[piece].id
        return hit

    def is_control(self, i: int) -> bool:
        """True for special tokens (they print as their text; generation output hides them)."""
        return i in self.special_ids

    def _bytes_of_id(self, i) -> bytes:
        hit = self.bytes_of.get(i) if isinstance(i, int) else None
        if hit is None:
            raise ValueError(f"id {i!r} is not in the vocabulary of {self.source} ({self.size} ids)")
        return hit

    # --- merging --------------------------------------------------------------------------------
    def _symbols(self, chunk: str) -> list[int]:
        """The chunk's characters as ids; characters not in the vocabulary become <unk> or vanish."""
        vocab = self.vocab
        ids = [vocab.get(ch, self.unk_id) for ch in chunk]
        if None in ids:
            ids = [i for i in ids if i is not None]
        if self.fuse_unk and self.unk_id is not None:
            ids = [i for k, i in enumerate(ids) if not (i == self.unk_id and k and ids[k - 1] == i)]
        return ids

    def _merge(self, chunk: str) -> list[int]:
        """BPE on one chunk: repeatedly merge the adjacent pair with the lowest rank, leftmost first."""
        if self.ignore_merges and chunk in self.vocab:  # Llama-3: a whole chunk in the vocabulary wins
            return [self.vocab[chunk]]
        ids = self._symbols(chunk)
        if len(ids) <= SHORT_CHUNK:
            return self._merge_short(ids)
        return self._merge_heap(ids)

    def _merge_short(self, ids: list[int]) -> list[int]:
        merges = self.merges
        while len(ids) > 1:
            best, at = None, -1
            for k in range(len(ids) - 1):
                hit = merges.get((ids[k], ids[k + 1]))
                if hit is not None and (best is None or hit[0] < best[0]):  # strict: leftmost wins ties
                    best, at = hit, k
            if best is None:
                break
            ids[at:at + 2] = [best[1]]
        return ids

    def _merge_heap(self, ids: list[int]) -> list[int]:
        """The same order for long chunks: O(n log n) with a linked list and buckets of positions.

        A heap of (rank, position) gives the order; we keep one bucket of positions per rank and a
        heap of the ranks only. All pairs of the lowest rank merge left to right; a merge never
        makes a pair of its own rank, and a lower one (possible only in odd vocabularies) sends
        the rest of the bucket back to wait its turn, so the order stays exactly the heap's.
        """
        n, merges = len(ids), self.merges
        nxt, prev = list(range(1, n + 1)), list(range(-1, n - 1))
        nxt[-1] = -1
        buckets: dict[int, list[int]] = {}
        for k in range(n - 1):
            hit = merges.get((ids[k], ids[k + 1]))
            if hit:
                buckets.setdefault(hit[0], []).append(k)
        ranks = list(buckets)
        heapq.heapify(ranks)

        get, pop, push = merges.get, heapq.heappop, heapq.heappush

        def file(rank, k):  # put position k in its rank's bucket
            bucket = buckets.get(rank)
            if bucket is None:
                buckets[rank] = [k]
                push(ranks, rank)
            else:
                bucket.append(k)

        while ranks:
            rank = pop(ranks)
            todo = buckets.pop(rank)
            todo.sort()
            for at, k in enumerate(todo):
                right, left = nxt[k], ids[k]
                if left < 0 or right < 0:
                    continue
                hit = get((left, ids[right]))
                if hit is None or hit[0] != rank:  # stale: a neighbour changed since it was filed
                    continue
                new = ids[k] = hit[1]
                ids[right] = -1
                after = nxt[k] = nxt[right]
                lower = False
                if after >= 0:
                    prev[after] = k
                    hit = get((new, ids[after]))
                    if hit is not None:
                        file(hit[0], k)
                        lower = hit[0] < rank
                before = prev[k]
                if before >= 0:
                    hit = get((ids[before], new))
                    if hit is not None:
                        file(hit[0], before)
                        lower = lower or hit[0] < rank
                if lower:  # a lower rank appeared: it goes first, the rest of this bucket waits
                    for rest in todo[at + 1:]:
                        file(rank, rest)
                    break
        out, k = [], 0
        while k >= 0:
            out.append(ids[k])
            k = nxt[k]
        return out

