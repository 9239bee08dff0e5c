"""One analysed prompt, as the page (model/web/) and `--inspect` read it: the tokens, a generation
replayed step by step (what sampling saw), and one forward over the whole sequence to look inside.

`analyze` runs the work once; the Analysis keeps the residual stream, and answers the detail the
page asks for later (attention rows of one query, the logit lens at one position) without rerunning.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from bpe.trace import describe_tokens
from .generate import Stats, check_prompt, generate
from .lens import attention_matrix, attention_rows, contributions, logit_lens, trace_sequence
from .sampling import check_sampling, explain
from .session import stop_ids

MAX_ANALYSED = 1024   # positions kept for looking inside (the residual stream is [2L + 1, T, D])


@dataclass
class Request:
    """What to analyse: the ids of the prompt and how to continue it."""
    ids: list
    max_new_tokens: int = 32
    temperature: float = 0.0
    top_k: int = 50
    top_p: float = 1.0
    seed: int = 0
    show: int = 10               # candidates shown per step
    speculate: bool = False      # lookup drafts (model/speculate.py): the timeline marks each token


@dataclass
class Analysis:
    """The result: the prompt, each generated step explained, and the whole sequence's trace."""
    loaded: object
    request: Request
    new_ids: list
    steps: list
    trace: object
    stats: Stats
    seconds: dict = field(default_factory=dict)

    @property
    def ids(self) -> list:
        return self.request.ids + self.new_ids

    def summary(self) -> dict:
        """Everything the page shows first, small: no logits, no attention matrices."""
        loaded, tok, cfg = self.loaded, self.loaded.tokenizer, self.loaded.model.cfg
        n = len(self.request.ids)
        timeline = []
        for j, step in enumerate(self.steps):
            for c in step["candidates"]:
                c["token"] = describe_tokens(tok, [c["id"]])[0]
            push = contributions(loaded.model, self.trace, n - 1 + j, step["token"]) if n - 1 + j < len(self.trace.ids) else None
            timeline.append({**step, "position": n - 1 + j, "push": push})
        norms = [[float(np.linalg.norm(self.trace.resid[2 * l][p])) for l in range(cfg.num_hidden_layers + 1)]
                 for p in range(len(self.trace.ids))]
        return {
            "tokens": describe_tokens(tok, self.ids), "prompt_tokens": n, "new_tokens": len(self.new_ids),
            "text": tok.decode(self.new_ids), "timeline": timeline, "norms": norms,
            "lens": self.lens(n - 1), "settings": vars(self.request) | {"ids": None},
            "speculation": vars(self.stats.speculation) if self.stats.speculation is not None else None,
            "seconds": self.seconds, "shapes": shapes(cfg),
        }

    def attention_from(self, query: int) -> list:
        """[L][H][query + 1] attention weights from one position, rounded for the wire."""
        return np.round(attention_rows(self.loaded.model, self.trace, query).astype(np.float64), 4).tolist()

    def attention_layer(self, layer: int) -> list:
        """[H][T][<= T] one layer's attention of every position, rounded for the wire: the page's heatmaps.
        Row t stops at key t (the causal mask hides the rest: zeros need not travel)."""
        probs = np.round(attention_matrix(self.loaded.model, self.trace, layer).astype(np.float64), 4)   # [H, T, T]
        return [[row[:t + 1].tolist() for t, row in enumerate(head)] for head in probs]

    def lens(self, position: int, k: int = 5) -> list:
        """Per layer the top-k tokens of the logit lens at a position, with pieces."""
        tok = self.loaded.tokenizer
        return [[{"id": i, "p": p, "token": describe_tokens(tok, [i])[0]} for i, p in layer]
                for layer in logit_lens(self.loaded.model, self.trace, position, k)]


def architecture(cfg) -> dict:
    """The model drawn as the page's block diagram: its parts in the order a token meets them, each with
    its shape for this model, the function (file and name) that computes it and the panel that shows it.
    Optional parts appear only when the config has them (Qwen3's and Gemma 3's q/k norms, Gemma 3's
    norms after attention and after the MLP, sliding windows, the embedding's scale)."""
    D, H, K, E, F, V = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
                        cfg.intermediate_size, cfg.vocab_size)
    norm = "(1 + w)" if cfg.model_type.startswith("gemma") else "w"    # Gemma's GGUF stores 1 + w itself
    act = "GeGLU: gelu(x W_gate^T) * (x W_up^T), then W_down" if cfg.mlp_act != "silu" else         "SwiGLU: silu(x W_gate^T) * (x W_up^T), then W_down"
    windows = sorted({w for w in (cfg.window(i) for i in range(cfg.num_hidden_layers)) if w})
    sliding = sum(1 for i in range(cfg.num_hidden_layers) if cfg.window(i))
    part = lambda name, shape, function, panel, note="": {"name": name, "shape": shape, "function": function,  # noqa: E731
                                                          "panel": panel, "note": note}
    embed_note = f"times sqrt(D) = {cfg.embed_scale:.2f}" if cfg.embed_scale else ""
    block = [part("RMSNorm", f"[T, {D}] -> [T, {D}]", "model/layers.py rms_norm", "lens",
                  f"x / rms(x) * {norm} (input_layernorm)")]
    block.append(part("attention", f"q [{H}, T, {E}], k v [{K}, T, {E}]",
                      "model/llama.py block, model/attention.py attention_probs", "attention",
                      f"{H} query heads share {K} key/value heads" + (f"; {sliding} of {cfg.num_hidden_layers} "
                      f"layers see only the last {', '.join(map(str, windows))} tokens" if windows else "")))
    if cfg.qk_norm:
        block.insert(1, part("q/k RMSNorm", f"per head, over {E}", "model/layers.py rms_norm", "attention",
                             "each head's q and k normalized before the rotation"))
    block.insert(len(block) - 1, part("RoPE", f"q, k [.., T, {E}]", "model/rope.py apply_rope", "attention",
                                      "positions as rotations of q and k"))
    if cfg.sandwich_norms:
        block.append(part("RMSNorm", f"[T, {D}]", "model/layers.py rms_norm", "lens",
                          "on the attention's output, before the residual (post_attention_layernorm)"))
    block.append(part("+ residual", f"[T, {D}]", "model/llama.py block", "lens", "x2 = x + attention"))
    block.append(part("RMSNorm", f"[T, {D}]", "model/layers.py rms_norm", "lens",
                      "pre_feedforward_layernorm" if cfg.sandwich_norms else "post_attention_layernorm"))
    block.append(part("MLP", f"[T, {D}] -> [T, {F}] -> [T, {D}]",
                      f"model/layers.py {'swiglu' if cfg.mlp_act == 'silu' else 'geglu'}", "lens", act))
    if cfg.sandwich_norms:
        block.append(part("RMSNorm", f"[T, {D}]", "model/layers.py rms_norm", "lens",
                          "on the MLP's output, before the residual (post_feedforward_layernorm)"))
    block.append(part("+ residual", f"[T, {D}]", "model/llama.py block", "lens", "y = x2 + MLP"))
    return {
        "type": cfg.model_type, "layers": cfg.num_hidden_layers,
        "windows": [cfg.window(i) for i in range(cfg.num_hidden_layers)],      # per layer: sliding window or None
        "before": [part("tokens", "[T]", "bpe: tok.encode", "tokens", "ids"),
                   part("embedding", f"[{V}, {D}] -> [T, {D}]", "model/layers.py embedding", "lens", embed_note)],
        "block": block,
        "after": [part("final RMSNorm", f"[T, {D}]", "model/layers.py rms_norm", "lens", "model.norm"),
                  part("LM head", f"[T, {D}] -> [T, {V}]", "model/layers.py linear", "timeline",
                       "tied to the embedding" if cfg.tie_word_embeddings else "its own matrix"),
                  part("sampling", "[V] -> id", "model/sampling.py sample", "timeline",
                       "temperature, top-k, top-p")],
    }


def shapes(cfg) -> dict:
    """The dimension letters of model/config.py for this model."""
    return {"L": cfg.num_hidden_layers, "H": cfg.num_attention_heads, "K": cfg.num_key_value_heads,
            "E": cfg.head_dim, "D": cfg.hidden_size, "F": cfg.intermediate_size, "V": cfg.vocab_size}


def analyze(loaded, req: Request) -> Analysis:
    """Generate as generate.py does (same seed, same text), explaining each step, then trace it all."""
    model, tok = loaded.model, loaded.tokenizer
    check_sampling(req.temperature, req.top_k, req.top_p)
    check_prompt(model, req.ids)
    if len(req.ids) + req.max_new_tokens > MAX_ANALYSED:
        raise ValueError(f"{len(req.ids)} prompt tokens + {req.max_new_tokens} new ones is more than the "
                         f"{MAX_ANALYSED} positions the page looks inside")
    steps, stats, seconds = [], Stats(), {}
    t = time.perf_counter()
    observe = (lambda logits, token: steps.append(explain(logits, token, temperature=req.temperature, top_k=req.top_k,
                                                          top_p=req.top_p, show=req.show)))
    marks = []
    drafter = None
    if req.speculate:
        from .speculate import LookupDrafter
        drafter = LookupDrafter()
    new = list(generate(model, req.ids, max_new_tokens=req.max_new_tokens, rng=np.random.default_rng(req.seed),
                        temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, stop_ids=stop_ids(model, tok),
                        stats=stats, limit=loaded.sample_limit, observe=observe, drafter=drafter,
                        mark=lambda token, how: marks.append(how)))
    del steps[len(new):]           # a checking pass may explain tokens past a stop or the length limit
    for j, step in enumerate(steps):
        step["how"] = marks[j] if j < len(marks) else "drawn"
    seconds["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    trace = trace_sequence(model, req.ids + new)
    seconds["trace"] = time.perf_counter() - t
    return Analysis(loaded, req, new, steps, trace, stats, seconds)
