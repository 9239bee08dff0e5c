"""Perplexity as llama.cpp's `llama-perplexity` computes it, so the numbers compare.

    tokens = tokenize(whole file)                 (BOS first when the model adds one)
    chunk c = tokens[c*ctx : (c+1)*ctx]           (its first token replaced by BOS when the model adds one)
    scored: positions ctx/2 .. ctx-2 of each chunk predicting the next token (ctx/2 - 1 per chunk)
    PPL = exp(mean nll),  +/- PPL * sqrt((mean nll^2 - mean nll^2) / (n - 1))   (llama.cpp's error)

The running value after each chunk is printed as llama.cpp prints it: [1]12.3456,[2]...
"""
from dataclasses import dataclass, field

import numpy as np

from ..speed import data_parallel
from .datasets import DataError

LOG_SOFTMAX_ROWS = 2      # rows of [rows, V] log-softmax at a time: 2 MB for Gemma's V of 262,144, in L2 (64 rows: 2.3x slower)


@dataclass
class PerplexityRun:
    """The running sums of a perplexity evaluation (llama.cpp's nll, nll2, count)."""
    chunks: int                    # chunks to score
    ctx: int
    nll: float = 0.0
    nll2: float = 0.0
    count: int = 0
    running: list = field(default_factory=list)   # PPL after each chunk

    def add(self, token_nll: np.ndarray) -> None:
        """One chunk's negative log-likelihoods (float64)."""
        self.nll += float(token_nll.sum())
        self.nll2 += float((token_nll * token_nll).sum())
        self.count += len(token_nll)
        self.running.append(float(np.exp(self.nll / self.count)))

    def estimate(self) -> tuple[float, float]:
        """(PPL, its standard error) as llama.cpp's final line: PPL * sd(nll) / sqrt(n - 1)."""
        mean, mean2 = self.nll / self.count, self.nll2 / self.count
        ppl = float(np.exp(mean))
        var = mean2 - mean * mean
        return ppl, (float(np.sqrt(var / (self.count - 1))) * ppl if var > 0 and self.count > 1 else float("nan"))


def chunk_tokens(tokens: list[int], ctx: int, chunks: int | None, bos: int | None) -> list[np.ndarray]:
    """The chunks llama.cpp scores: ctx tokens each, the first replaced by BOS when the model adds one."""
    if ctx < 2:
        raise DataError("ctx", f"{ctx} is too small: a chunk needs at least 2 tokens")
    if len(tokens) < 2 * ctx:
        raise DataError("data", f"the text has {len(tokens)} tokens; perplexity with a context of {ctx} needs at "
                                f"least {2 * ctx} (llama.cpp's rule)")
    n = len(tokens) // ctx if chunks is None else min(chunks, len(tokens) // ctx)
    out = []
    for c in range(n):
        chunk = np.array(tokens[c * ctx:(c + 1) * ctx], np.int64)
        if bos is not None:
            chunk[0] = bos
        out.append(chunk)
    return out


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row      logits: [N, V], targets: [N] -> [N] (float64)

    exp in the logits' dtype (float32 in a float32 model) less their row's max (every term in [0, 1]), sums and logs in
    float64, as llama.cpp does; a block of rows at a time into a reused buffer (Gemma's V is 262,144), the rows
    split between two threads (model/speed.py data_parallel).
    """
    out = np.empty(len(targets))
    dtype = np.result_type(logits.dtype, np.float32)

    def rows(first: int, end: int) -> None:
        buf = np.empty((min(LOG_SOFTMAX_ROWS, max(end - first, 1)), logits.shape[-1]), dtype)
        for a in range(first, end, LOG_SOFTMAX_ROWS):
            z = logits[a:min(a + LOG_SOFTMAX_ROWS, end)]
            n = len(z)
            peak = z.max(axis=-1, keepdims=True)                                # [n, 1]
            e = np.subtract(z, peak, out=buf[:n])
            np.exp(e, out=e)
            lse = peak[:, 0].astype(np.float64) + np.log(e.sum(axis=-1, dtype=np.float64))
            out[a:a + n] = lse - z[np.arange(n), targets[a:a + n]]
    data_parallel(rows, len(targets), one_blas_thread=False, row_size=logits.shape[-1])
    return out


def score_chunk(model, chunk: np.ndarray) -> np.ndarray:
    """The nll of positions ctx/2 .. ctx-2 predicting their next token: one forward over the chunk."""
    ctx, first = len(chunk), len(chunk) // 2
    model.new_cache(ctx)
    logits = model.forward(chunk, outputs=slice(first, ctx - 1))        # [ctx - 1 - first, V]
    return token_nll(logits, chunk[first + 1:])


def perplexity(model, tok, text: str, *, ctx: int = 512, chunks: int | None = None, on_chunk=None) -> PerplexityRun:
    """llama.cpp's perplexity of `text`; on_chunk(run) after each chunk (the caller prints run.running)."""
    if ctx > model.cfg.max_position_embeddings:
        raise DataError("ctx", f"{ctx} is larger than the model's context of {model.cfg.max_position_embeddings}")
    if chunks is not None and chunks < 1:
        raise DataError("chunks", f"{chunks}: must be a positive integer")
    tokens = tok.encode(text, bos=tok.add_bos)
    parts = chunk_tokens(tokens, ctx, chunks, tok.bos_id if tok.add_bos else None)
    run = PerplexityRun(len(parts), ctx)
    for chunk in parts:
        run.add(score_chunk(model, chunk))
        if on_chunk is not None:
            on_chunk(run)
    return run
