"""The heart of BPE training: learn merges from word counts, updating pair counts incrementally.

A corpus is first reduced to `{word: count}`; a word is a tuple of symbol ids. Each step merges
the most frequent adjacent pair everywhere it occurs. After a merge only the words that contained
the pair are re-scanned, and only their pair counts change (no full recount), so a step costs
time proportional to where the pair occurs, not to the corpus.

Ties on count go to the shorter new symbol, then the smaller string (SentencePiece's rule).
"""
import heapq
from collections import defaultdict
from typing import Callable


def get_stats(ids, counts=None) -> dict:
    """Count adjacent pairs in a sequence, in first-seen order.

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, new_id) -> list:
    """Replace every non-overlapping occurrence of `pair` (left to right) with `new_id`.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    """
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(word_counts: dict, symbols: list, target: int, *,
                 can_merge: Callable[[int, int], bool] = lambda a, b: True,
                 on_merge: Callable | None = None, on_step: Callable | None = None) -> list[tuple[int, int, int]]:
    """Merge until `symbols` (the strings/bytes of each symbol id, extended in place) reaches `target`.

    Returns the merges in order as (left id, right id, new id); `on_merge(left, right, new, count)`
    is called after each one, `on_step(pair_counts)` before it (the live counts, for showing
    the table). Stops early when no mergeable pair is left.
    """
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    index = {s: i for i, s in enumerate(symbols)}
    allowed: dict = {}

    def ok(pair):
        hit = allowed.get(pair)
        if hit is None:
            hit = allowed[pair] = can_merge(*pair)
        return hit

    pair_counts: dict = defaultdict(int)
    where: dict = defaultdict(set)
    for w, (word, c) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            if ok(pair):
                pair_counts[pair] += c
                where[pair].add(w)

    def key(pair, count):
        joined = symbols[pair[0]] + symbols[pair[1]]
        return (-count, len(joined), joined, pair)

    heap = [key(p, c) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while heap and len(symbols) < target:
        neg, _, joined, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg:  # stale entry: its count went down since it was pushed
            if count > 0:
                heapq.heappush(heap, key(pair, count))
            continue
        if on_step:
            on_step(pair_counts)
        new = index.get(joined)
        if new is None:
            new = index[joined] = len(symbols)
            symbols.append(joined)
        merges.append((pair[0], pair[1], new))
        changed = set()
        for w in where.pop(pair):
            word = words[w]
            if len(word) < 2:
                continue
            c = counts[w]
            for p in zip(word, word[1:]):
                if p in pair_counts:
                    pair_counts[p] -= c
            word = words[w] = merge(word, pair, new)
            for p in zip(word, word[1:]):
                if ok(p):
                    pair_counts[p] += c
                    if p[0] == new or p[1] == new:
                        where[p].add(w)
                        changed.add(p)
        del pair_counts[pair]
        for p in changed:
            heapq.heappush(heap, key(p, pair_counts[p]))
        if on_merge:
            on_merge(pair[0], pair[1], new, -neg)
    return merges
