"""Looking inside one forward pass over a whole sequence: the logit lens, each layer's push on a
token, and attention rows recomputed on demand by the forward itself (so a long text never stores [L, H, T, T]).

The residual stream is x_0 = embedding, then x += attention_l(...) and x += mlp_l(...) for each
layer l; the logits are rms_norm(x_final) @ W_head^T.
  logit lens:   layer l's "prediction" = softmax(rms_norm(x_l) @ W_head^T), the final norm and head
                applied early; after the last layer it is the model's real prediction.
  contribution: with r = 1 / rms(x_final) fixed, logit[t] = sum over the pieces d of x_final of
                d . (r * norm_weight * W_head[t]): the embedding, and each layer's attention and MLP
                output, each push the token's logit by exactly their term (direct logit attribution).
"""
from dataclasses import dataclass

import numpy as np

from .layers import rms_norm


KEPT_PROBS = 64 << 20     # bytes of attention probabilities [L, H, T, T] a trace keeps (else recomputed)


@dataclass
class SequenceTrace:
    """The residual stream of one forward pass: resid[2l + 1] after layer l's attention, resid[2l + 2]
    after its MLP, resid[0] the embedding; each [T, D]. `probs`, when the sequence is short enough to
    keep them, each layer's attention [H, T, T] as that forward computed it."""
    ids: list
    resid: list
    probs: list | None = None


def trace_sequence(model, ids) -> SequenceTrace:
    """One forward over all of `ids` in a fresh cache, keeping the residual stream of every position (and the
    attention probabilities when they take at most KEPT_PROBS bytes)."""
    cfg, T = model.cfg, len(ids)
    keep = cfg.num_hidden_layers * cfg.num_attention_heads * T * T * 4 <= KEPT_PROBS
    trace = {"residual": [], **({"probs": []} if keep else {})}
    model.new_cache(T)
    model.forward(ids, trace=trace)
    return SequenceTrace(list(ids), trace["residual"], trace.get("probs"))


def layer_states(tr: SequenceTrace, position: int) -> np.ndarray:
    """The hidden state after the embedding and after each layer, at one position   -> [L + 1, D]."""
    return np.stack([tr.resid[0][position]] + [tr.resid[2 * l + 2][position] for l in range(len(tr.resid) // 2)])


def logit_lens(model, tr: SequenceTrace, position: int, k: int = 5) -> list[list[tuple[int, float]]]:
    """Per layer (0 = the embedding), the top-k (id, probability) of the final norm + LM head applied there."""
    states = layer_states(tr, position)                                          # [L + 1, D]
    logits = rms_norm(states, model.final_norm, model.cfg.rms_norm_eps) @ model.lm_head.T  # [L + 1, V]
    peak = logits.max(axis=-1, keepdims=True)
    log_total = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=-1))          # [L + 1] log-sum-exp
    out = []
    for row, lse in zip(logits, log_total):
        top = np.argpartition(row, -k)[-k:]
        top = top[np.argsort(-row[top])]
        out.append([(int(i), float(np.exp(row[i] - lse))) for i in top])      # softmax of the top k only
    return out


def contributions(model, tr: SequenceTrace, position: int, token: int) -> dict:
    """How much the embedding and each layer's attention and MLP pushed `token`'s logit at `position`.

    Returns {"embedding": e, "attention": [L], "mlp": [L], "logit": the real logit}; e + sum(attention)
    + sum(mlp) equals the logit (up to float32 rounding).
    """
    cfg = model.cfg
    final = tr.resid[-1][position]                                               # [D]
    r = 1 / np.sqrt(np.mean(final.astype(np.float64) ** 2) + cfg.rms_norm_eps)
    direction = r * model.final_norm.astype(np.float64) * model.lm_head[token].astype(np.float64)  # [D]
    pieces = [tr.resid[0][position]] + [tr.resid[j][position] - tr.resid[j - 1][position]
                                        for j in range(1, len(tr.resid))]
    push = [float(np.dot(p.astype(np.float64), direction)) for p in pieces]
    logit = rms_norm(final[None], model.final_norm, cfg.rms_norm_eps)[0] @ model.lm_head[token]
    return {"embedding": push[0], "attention": push[1::2], "mlp": push[2::2], "logit": float(logit)}


def attention_rows(model, tr: SequenceTrace, query: int) -> np.ndarray:
    """Every layer's and head's attention from position `query` over positions 0..query   -> [L, H, query + 1].

    Recomputed by running the model's own forward (the block) over the first query + 1 tokens, so it
    is what the forward pass used, and a long text never stores [L, H, T, T].
    """
    if tr.probs is not None:                                                       # kept by the traced forward
        return np.stack([p[:, query, :query + 1] for p in tr.probs])               # [L, H, query + 1]
    trace: dict = {}
    model.new_cache(query + 1)
    model.forward(tr.ids[:query + 1], trace=trace)
    return np.stack(trace["attention"])                                            # [L, H, query + 1]


def attention_matrix(model, tr: SequenceTrace, layer: int) -> np.ndarray:
    """One layer's attention of every position over every earlier one      -> [H, T, T]

    The model's own block run on that layer's input (the residual stream before it) with no cache:
    the same probs the forward made (causal mask, and the sliding window of the layer when it has one).
    """
    if tr.probs is not None:                                                       # kept by the traced forward
        return tr.probs[layer]
    from .llama import block
    x = tr.resid[2 * layer]                                                        # [T, D]
    cos, sin = model.rotary(0, len(x), layer)                                      # [T, E]
    keep: dict = {}
    block(model.cfg, model.layers[layer], x, cos, sin, keep=keep)
    return keep["probs"]                                                           # [H, T, T]
