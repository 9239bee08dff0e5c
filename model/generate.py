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
    """Timings of one generation, in seconds and tokens."""
    load_s: float = 0.0
    prompt_tokens: int = 0
    prefill_s: float = 0.0
    generated_tokens: int = 0
    decode_s: float = 0.0
    stopped_at_context: bool = False

    def report(self) -> str:
        """llama.cpp-style lines: load time, prompt eval, eval."""
        def rate(n, s):
            return f"{1000 * s / max(n, 1):8.2f} ms per token, {n / s if s else 0.0:8.2f} tokens per second"
        lines = [f"load time   = {1000 * self.load_s:10.2f} ms",
                 f"prompt eval = {1000 * self.prefill_s:10.2f} ms / {self.prompt_tokens:5d} tokens "
                 f"({rate(self.prompt_tokens, self.prefill_s)})",
                 f"eval time   = {1000 * self.decode_s:10.2f} ms / {self.generated_tokens:5d} tokens "
                 f"({rate(self.generated_tokens, self.decode_s)})"]
        if self.stopped_at_context:
            lines.append("stopped: the context is full")
        return "\n".join(lines)


def check_prompt(model, prompt: list[int]) -> None:
    """Raise ContextError unless the prompt leaves room for at least one new token."""
    context = model.cfg.max_position_embeddings
    if not prompt:
        raise ContextError("the prompt is empty")
    if len(prompt) >= context:
        raise ContextError(f"the prompt has {len(prompt)} tokens; the context holds {context} "
                           "(including at least one new token)")


def generate(model, prompt: list[int], *, max_new_tokens: int, rng: np.random.Generator,
             temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             stop_ids=(), stats: Stats | None = None, reuse: int = 0):
    """Yield up to `max_new_tokens` new token ids after `prompt`, stopping after a stop id.

    `reuse` positions of a previous run's cache (a shared prefix, as in a chat) are kept.
    """
    check_sampling(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be >= 0, got {max_new_tokens}")
    check_prompt(model, prompt)
    context = model.cfg.max_position_embeddings
    stats = stats if stats is not None else Stats()
    stats.prompt_tokens = len(prompt) - reuse
    if reuse and model.cache_k is not None and reuse <= model.length:
        model.length = reuse
    else:
        model.new_cache(context)
        reuse = 0
    t = time.perf_counter()
    logits = model.forward(prompt[reuse:])
    stats.prefill_s = time.perf_counter() - t
    t = time.perf_counter()
    for step in range(max_new_tokens):
        token = sample(logits, rng, temperature=temperature, top_k=top_k, top_p=top_p)
        stats.generated_tokens += 1
        stats.decode_s = time.perf_counter() - t
        yield token
        if token in stop_ids or step == max_new_tokens - 1:
            break
        if model.length >= context:
            stats.stopped_at_context = True
            break
        logits = model.forward([token])
    stats.decode_s = time.perf_counter() - t
