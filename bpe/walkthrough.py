"""The classic BPE walkthrough, step by step, on one sentence (the table every BPE tutorial shows).

Count the adjacent letter pairs inside words (case-sensitive), merge the most frequent pair into
a new symbol, repeat. Ties go to the pair seen first. On the sentence below the counts start
de 7, in 6, ep 4, and merging "de" into "X" turns "deploy deep models" into "Xploy Xep moXls".
"""
import regex

from .merges import get_stats, merge

SENTENCE = ("FloydHub is the fastest way to build, train and deploy deep learning models. "
            "Build deep learning models in the cloud. Train deep learning models.")
WORD_RE = regex.compile(r"\p{L}+")


def letter_pair_counts(text: str) -> dict[str, int]:
    """Counts of adjacent letter pairs inside words, most frequent first, ties in first-seen order.

    >>> letter_pair_counts("deep dee")
    {'de': 2, 'ee': 2, 'ep': 1}
    """
    counts: dict = {}
    for word in WORD_RE.findall(text):
        get_stats(list(word), counts)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: keeps first-seen order on ties
    return {a + b: c for (a, b), c in ranked}


def merge_in_text(text: str, pair: str, symbol: str) -> str:
    """Replace the letter pair with a new symbol wherever it occurs inside a word.

    >>> merge_in_text("deploy deep models", "de", "X")
    'Xploy Xep moXls'
    """
    return WORD_RE.sub(lambda m: m.group().replace(pair, symbol), text)


def learn(text: str, steps: int) -> list[tuple[str, str, int]]:
    """Run `steps` merges on the words of `text`; return (left, right, count) for each step."""
    words = [list(w) for w in WORD_RE.findall(text)]
    out = []
    for _ in range(steps):
        counts: dict = {}
        for w in words:
            get_stats(w, counts)
        if not counts:
            break
        pair = max(counts, key=counts.get)  # max() keeps the first-seen pair on ties
        out.append((pair[0], pair[1], counts[pair]))
        words = [merge(w, pair, pair[0] + pair[1]) for w in words]
    return out


def render(text: str = SENTENCE, *, table_rows: int = 15, steps: int = 10) -> str:
    """The walkthrough as printable text: the pair table, the merged sentence, the next merges."""
    counts = letter_pair_counts(text)
    first = next(iter(counts))
    lines = [f"Text: {text}", "", "Adjacent letter pairs inside words (most frequent first):", "",
             "pair  count", "----  -----"]
    lines += [f"{p:<4}  {c:>5}" for p, c in list(counts.items())[:table_rows]]
    lines += ["", f"Merge the most frequent pair '{first}' into a new symbol X:", "",
              merge_in_text(text, first, "X"), "", "Merge after merge (step 1 is the one above; each new symbol is a new token):", "",
              "step  pair        count  new token", "----  ----------  -----  ---------"]
    for k, (a, b, c) in enumerate(learn(text, steps), 1):
        lines.append(f"{k:>4}  {a + ' + ' + b:<10}  {c:>5}  {a + b}")
    return "\n".join(lines)
