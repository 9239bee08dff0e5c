"""Speculative decoding: draft a few tokens cheaply, then let the model check them all in one
forward pass (decoding is memory-bound, so a pass over k + 1 tokens costs little more than one).

    drafts d_1..d_k  (from n-grams of the text so far, or from a smaller model with the same tokenizer)
    one target forward over [last, d_1..d_k] -> k + 1 distributions p_0..p_k
    accept d_j with probability min(1, p(d_j) / q(d_j)); at the first rejection draw from
    max(0, p - q) renormalized, and stop; if all k are accepted, draw one more from p_k.

This is Leviathan et al. / Chen et al.'s rule: the tokens come from the target's distribution
exactly (with greedy decoding, token for token the plain text). The KV cache is rolled back past
the rejected drafts by setting the model's length: their entries are overwritten later.
"""
from dataclasses import dataclass

import numpy as np

from .errors import OptionError
from .sampling import filtered

PAYS = 2  # drafts a checking pass must keep to cost less than the plain passes it replaces


@dataclass
class Drafted:
    """Counts the stats report: drafted and accepted tokens, target forward passes."""
    drafted: int = 0
    accepted: int = 0
    passes: int = 0       # checking passes over drafts
    plain: int = 0        # one-token passes (nothing drafted)

    def report(self, generated: int) -> str:
        """One stats line: what was drafted, what was kept, and the passes the model made."""
        rate = self.accepted / self.drafted if self.drafted else 0.0
        passes = self.passes + self.plain
        return (f"speculate   = {self.drafted} drafted, {self.accepted} accepted ({100 * rate:.0f}%), "
                f"{passes} target passes ({self.passes} checking drafts) for {generated} tokens")

class LookupDrafter:
    """Prompt lookup (llama.cpp's lookup decoding, transformers' prompt_lookup_num_tokens): the tokens
    that followed the last earlier occurrence of the text's final n-gram (n = 3, then 2).

    subtle: a single repeated token ("the", ",") predicts little in free text; drafts from it are
    mostly rejected and cost a checking pass each, so one-token matches are not used.
    """

    max_ngram, min_ngram = 3, 2

    def propose(self, ids: list[int], k: int):
        """Up to k drafts and their draft probabilities (None: q puts all mass on the draft)."""
        n_ids = len(ids)
        for n in range(min(self.max_ngram, n_ids - 1), self.min_ngram - 1, -1):
            tail = ids[-n:]
            for start in range(n_ids - n - 1, -1, -1):   # the latest earlier occurrence
                if ids[start:start + n] == tail:
                    follow = ids[start + n:start + n + k]
                    if follow:
                        return follow, None
        return [], None

    def rollback(self, kept: int) -> None:
        """Lookup keeps no state."""


class ModelDrafter:
    """A smaller model with the same tokenizer proposes k tokens, sampled as the target would sample
    (greedy at temperature 0); its own KV cache follows the text and is rolled back like the target's."""

    def __init__(self, model, settings: dict, rng: np.random.Generator, limit: int):
        self.model, self.settings, self.rng, self.limit = model, settings, rng, limit
        self.ids: list[int] = []         # the tokens whose keys and values are in the draft cache

    def propose(self, ids: list[int], k: int):
        m = self.model
        same = 0
        for a, b in zip(self.ids, ids[:-1]):
            if a != b:
                break
            same += 1
        if m.cache_k is None or same == 0:
            m.new_cache(m.cfg.max_position_embeddings)
        m.length = same
        room = m.cache_k.shape[2] - len(ids)
        k = min(k, room)
        if k <= 0:
            return [], None
        logits = m.forward(ids[same:])
        drafts, qs = [], []
        for j in range(k):
            tokens, probs = filtered(logits[:self.limit], **self.settings)
            q = np.zeros(self.limit)
            q[tokens] = probs
            d = int(tokens[0]) if self.settings["temperature"] == 0 else int(tokens[self.rng.choice(len(tokens), p=probs)])
            drafts.append(d)
            qs.append(q)
            if j < k - 1:
                logits = m.forward([d])
        self.ids = list(ids) + drafts[:-1]
        return drafts, qs


def verify(logits: np.ndarray, drafts: list[int], qs, settings: dict, rng: np.random.Generator, limit: int):
    """The tokens to keep after one checking pass: accepted drafts, then one drawn by the target.

    logits: [k + 1, V] of the pass over [last, d_1..d_k]. Returns (tokens, accepted count).
    """
    greedy = settings["temperature"] == 0
    for j, d in enumerate(drafts):
        row = logits[j][:limit]
        if greedy:
            best = int(np.argmax(row))
            if best != d:
                return drafts[:j] + [best], j
            continue
        tokens, probs = filtered(row, **settings)
        p = np.zeros(limit)
        p[tokens] = probs
        q = qs[j] if qs is not None else None
        q_d = 1.0 if q is None else q[d]
        if rng.random() < min(1.0, p[d] / q_d):
            continue
        rest = np.maximum(p - (q if q is not None else np.eye(1, limit, d)[0]), 0)   # max(0, p - q)
        total = rest.sum()
        rest = rest / total if total > 0 else p
        return drafts[:j] + [int(rng.choice(limit, p=rest))], j
    row = logits[len(drafts)][:limit]
    if greedy:
        return drafts + [int(np.argmax(row))], len(drafts)
    tokens, probs = filtered(row, **settings)
    return drafts + [int(tokens[rng.choice(len(tokens), p=probs)])], len(drafts)


def speculative(model, prompt: list[int], first_logits: np.ndarray, drafter, *, k: int, max_new_tokens: int,
                rng: np.random.Generator, settings: dict, stop_ids, limit: int, counts: Drafted, context: int,
                observe=None, mark=None):
    """Yield new tokens after the prompt (whose prefill gave first_logits), drafting k at a time.

    subtle: a checking pass over a few tokens costs about 2.5 one-token passes here (BLAS reads
    each weight matrix in a slower way for T > 1), so a pass pays only when it keeps 2 or more
    drafts. After one that keeps fewer, the draft length halves and the next `backoff` tokens are
    decoded plainly (the backoff doubles each time, up to 32); a pass that keeps every draft doubles
    the length back up to k. Text with little to look up so runs at about plain speed.
    """
    from .sampling import sample
    ids = list(prompt)
    token = sample(first_logits[:limit], rng, **settings)
    if observe is not None:      # each token's logits, in the order the tokens come out
        observe(first_logits[:limit], token)
    made, backoff, plain, size, rejected = 0, 1, 0, k, 0
    while True:
        if mark is not None:
            mark(token, f"drawn in place of {rejected} rejected drafts" if rejected else "drawn")
        rejected = 0
        yield token
        made += 1
        ids.append(token)
        if token in stop_ids or made >= max_new_tokens or model.length + 1 >= context:
            return
        drafts, qs = ([], None) if plain > 0 else drafter.propose(ids, min(size, max_new_tokens - made,
                                                                            context - model.length - 2))
        plain = max(plain - 1, 0)
        if not drafts:
            logits = model.forward([token])
            counts.plain += 1
            token = sample(logits[:limit], rng, **settings)
            if observe is not None:
                observe(logits[:limit], token)
            continue
        base = model.length
        logits = model.forward([token] + drafts, all_logits=True)              # [k + 1, V]
        counts.passes += 1
        kept, accepted = verify(logits, drafts, qs, settings, rng, limit)
        judged = len(drafts)
        stop_at = next((j for j, t in enumerate(kept) if t in stop_ids), None)
        if stop_at is not None:              # drafts after a stop token are never output, nor counted
            kept, accepted, judged = kept[:stop_at + 1], min(accepted, stop_at + 1), min(judged, stop_at + 1)
        counts.drafted += judged
        counts.accepted += accepted
        rejected = judged - accepted
        if observe is not None:
            for j, t in enumerate(kept):
                observe(logits[j][:limit], t)
        model.length = base + 1 + accepted                                       # roll back past the rejected
        if accepted < PAYS:
            plain, backoff, size = backoff, min(backoff * 2, 32), max(size // 2, 1)
        else:
            backoff = 1
            if accepted == len(drafts):
                size = min(size * 2, k)
        for t in kept[:-1]:
            if mark is not None:
                mark(t, "drafted, accepted")
            yield t
            made += 1
            ids.append(t)
            if t in stop_ids or made >= max_new_tokens:
                return
        token = kept[-1]


def check_same_tokenizer(target, draft, name: str) -> None:
    """A draft model must share the target's vocabulary id for id; ValueError naming the first difference."""
    if target.vocab_size != draft.vocab_size:
        raise OptionError("speculate", f"{name}: its tokenizer has {draft.vocab_size} ids, the model's {target.vocab_size}")
    for i in range(target.vocab_size):
        a, b = target.id_to_piece(i), draft.id_to_piece(i)
        if a != b:
            raise OptionError("speculate", f"{name}: its tokenizer differs from the model's at id {i} "
                             f"({b!r} vs {a!r})")
