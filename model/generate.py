"""The generation loop: prefill the prompt in one forward, then decode one token at a time.

`generate` is a generator that yields token ids as they are chosen, and fills in a
`Stats` record (llama.cpp-style timings) as it goes.
"""
import time
from dataclasses import dataclass

import numpy as np

from .sampling import check_sampling, sample


class ContextError(ValueError):
    """Raised when the prompt does not fit the model's context."""


@dataclass
class Stats:
    """Timings of one generation, in seconds and tokens, as llama.cpp reports them.

    prompt eval is the prefill forward (whose logits give the first new token); eval counts
    the decode forwards ("runs"), one per new token that was fed back, so N new tokens take
    N - 1 runs when generation ends at the limit. `load_s` None leaves the load line out.
    """
    load_s: float | None = None
    prompt_tokens: int = 0
    prefill_s: float = 0.0
    generated_tokens: int = 0
    decode_runs: int = 0
    decode_s: float = 0.0
    stopped_at_context: bool = False
    slides: int = 0                 # times the window slid (a full context, raw text: nanoGPT's sampler)
    window: int = 0                 # tokens kept when it slid
    speculation: object = None      # model/speculate.py Drafted, when drafting

    def report(self) -> str:
        """llama.cpp-style lines: load time, prompt eval, eval, tokens generated."""
        def rate(n, s):
            return f"{1000 * s / n if n else 0.0:8.2f} ms per token, {n / s if s else 0.0:8.2f} tokens per second"
        lines = [] if self.load_s is None else [f"load time   = {1000 * self.load_s:10.2f} ms"]
        lines += [f"prompt eval = {1000 * self.prefill_s:10.2f} ms / {self.prompt_tokens:5d} tokens "
                  f"({rate(self.prompt_tokens, self.prefill_s)})",
                  (f"eval time   = {1000 * self.decode_s:10.2f} ms / {self.decode_runs:5d} runs   "
                   f"({rate(self.decode_runs, self.decode_s)})") if self.speculation is None else
                  (f"eval time   = {1000 * self.decode_s:10.2f} ms / {max(self.generated_tokens - 1, 0):5d} tokens "
                   f"({rate(max(self.generated_tokens - 1, 0), self.decode_s)}; the tokens after the first, "
                   f"made in {self.decode_runs} forward runs)"),
                  f"generated   = {self.generated_tokens:5d} tokens"]
        if self.speculation is not None:
            lines.append(self.speculation.report(self.generated_tokens))
        if self.stopped_at_context:
            lines.append("stopped: the context is full")
        if self.slides:
            lines.append(f"the context filled {self.slides} time(s): each time the model went on from the last "
                         f"{self.window} tokens (a sliding window, as nanoGPT's sampler crops to its block size)")
        return "\n".join(lines)


def check_prompt(model, prompt: list[int]) -> None:
    """Raise ContextError unless the prompt leaves room for at least one new token."""
    context = model.cfg.max_position_embeddings
    if not prompt:
        raise ContextError("the prompt is empty")
    if len(prompt) >= context:
        raise ContextError(f"the prompt has {len(prompt)} tokens; the context holds {context} "
                           "(including at least one new token)")


READ_CHUNK = 512      # a long prompt is read this many tokens at a time when someone watches the progress


def prefill(model, ids: list[int], reading=None):
    """The forward over new prompt ids after the cache; logits [V] of the last. With `reading(done, total)`,
    a prompt longer than READ_CHUNK is read in chunks (the same cache, so the same result up to rounding),
    reporting after each one."""
    if reading is None or len(ids) <= READ_CHUNK:
        return model.forward(ids)
    for start in range(0, len(ids), READ_CHUNK):
        logits = model.forward(ids[start:start + READ_CHUNK])
        reading(min(start + READ_CHUNK, len(ids)), len(ids))
    return logits


def generate(model, prompt: list[int], *, max_new_tokens: int, rng: np.random.Generator,
             temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             stop_ids=(), stats: Stats | None = None, reuse: int = 0, limit: int | None = None,
             observe=None, drafter=None, draft_tokens: int = 8, mark=None, slide: bool = False, reading=None):
    """Yield up to `max_new_tokens` new token ids after `prompt`, stopping after a stop id.

    `reuse` positions of a previous run's cache (a shared prefix, as in a chat) are kept. Only
    ids below `limit` are sampled (a model may have padding rows the tokenizer has no ids for).
    `observe(logits, token)`, if given, sees each step's logits and choice (the page's timeline).
    `drafter` (model/speculate.py: LookupDrafter, or a draft Llama with the same tokenizer) turns on
    speculative decoding, `draft_tokens` at a time; the tokens come from the same distribution;
    `mark(token, how)` then hears how each token came ("drawn", "drafted, accepted", ...).
    With `slide`, a full context does not end a raw continuation: the model goes on from the last
    three quarters of the text (a fresh cache), as nanoGPT's sampler crops to its block size.
    `reading(done, total)`, if given, hears the prefill's progress over a long prompt (read in chunks).
    """
    check_sampling(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    check_prompt(model, prompt)
    context = model.cfg.max_position_embeddings
    stats = stats if stats is not None else Stats()
    if reuse and model.cache_k is not None and model.length:
        reuse = model.length = min(reuse, model.length, len(prompt) - 1)  # what the cache really holds
    else:
        model.new_cache(context)
        reuse = 0
    stats.prompt_tokens = len(prompt) - reuse
    t = time.perf_counter()
    try:
        logits = prefill(model, prompt[reuse:], reading)
    finally:  # also when Ctrl-C stops the prefill: the time spent is still true
        stats.prefill_s = time.perf_counter() - t
    if drafter is not None and max_new_tokens > 0:
        yield from _speculate(model, prompt, logits, drafter, draft_tokens, max_new_tokens, rng,
                              dict(temperature=temperature, top_k=top_k, top_p=top_p), stop_ids, stats, limit,
                              observe, mark)
        return
    history = list(prompt)
    for step in range(max_new_tokens):
        token = sample(logits[:limit], rng, temperature=temperature, top_k=top_k, top_p=top_p)
        if observe is not None:
            observe(logits[:limit], token)
        stats.generated_tokens += 1
        yield token
        if token in stop_ids or step == max_new_tokens - 1:
            break
        history.append(token)
        t = time.perf_counter()
        if model.length >= context and slide:
            stats.window = max(1, context * 3 // 4)
            stats.slides += 1
            model.new_cache(context)
            try:
                logits = model.forward(history[-stats.window:])      # the last three quarters, re-read
            finally:
                stats.prefill_s += time.perf_counter() - t
            continue
        if model.length >= context:
            stats.stopped_at_context = True
            break
        try:
            logits = model.forward([token])
            stats.decode_runs += 1
        finally:
            stats.decode_s += time.perf_counter() - t


def _speculate(model, prompt, logits, drafter, k, max_new_tokens, rng, settings, stop_ids, stats, limit,
               observe=None, mark=None):
    """generate's decode phase with drafts checked in one pass each (model/speculate.py)."""
    from .speculate import Drafted, ModelDrafter, speculative
    limit = limit or len(logits)
    if hasattr(drafter, "forward"):   # a draft model
        drafter = ModelDrafter(drafter, settings, rng, limit)
    stats.speculation = counts = Drafted()
    context = model.cfg.max_position_embeddings
    t = time.perf_counter()
    for token in speculative(model, prompt, logits, drafter, k=k, max_new_tokens=max_new_tokens, rng=rng,
                             settings=settings, stop_ids=stop_ids, limit=limit, counts=counts, context=context,
                             observe=observe, mark=mark):
        stats.generated_tokens += 1
        stats.decode_runs = counts.passes + counts.plain
        stats.decode_s = time.perf_counter() - t
        yield token
    stats.stopped_at_context = model.length + 1 >= context and token not in stop_ids
