"""Looking inside the model: next-token tables, attention maps, hidden-state norms, embeddings.

Used by `scripts/generate.py --inspect` and `scripts/embeddings.py`; every function works on any
checkpoint (TinyLlama or a small test model).
"""
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from bpe.pipeline import to_byte_chars

from .attention import softmax
from .errors import OptionError

SHADES = " .:-=+*#%@"  # text heatmap, light to dark


def top_tokens(logits: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k most likely next tokens as (id, probability), probabilities = softmax(logits), best first."""
    probs = softmax(logits.astype(np.float64))               # [V]
    k = min(k, len(probs))
    best = np.argpartition(-probs, k - 1)[:k]
    best = best[np.argsort(-probs[best], kind="stable")]
    return [(int(i), float(probs[i])) for i in best]


def shade_key() -> str:
    """The text heatmap's key: which character stands for which weight."""
    step = 1 / len(SHADES)
    return "key: " + "  ".join(f"{c!r} {k * step:.1f}-{(k + 1) * step:.1f}" for k, c in enumerate(SHADES))


def text_heatmap(weights: np.ndarray, columns: list[str], rows: list[str], legend: bool = True) -> str:
    """Draw weights [R, C] in [0, 1] as characters, one row per line, with a column ruler (and legend)."""
    lines = []
    width = max(len(r) for r in rows)
    for label, row in zip(rows, weights):
        cells = "".join(SHADES[min(int(w * len(SHADES)), len(SHADES) - 1)] for w in row)
        lines.append(f"{label:>{width}} |{cells}|")
    lines.append(" " * width + "  " + "".join(str(i % 10) for i in range(len(columns))))
    if legend:
        lines += [f"{' ' * width}  {i:>3} = {c}" for i, c in enumerate(columns)]
    return "\n".join(lines)


def has_matplotlib() -> bool:
    """Whether matplotlib (the viz extra) can draw labelled PNGs."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def png_heatmap(path, weights: np.ndarray, columns: list[str], rows: list[str], title: str) -> None:
    """Write weights [R, C] as a PNG heatmap: with matplotlib when installed, else bare pixels."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:                     # cells large enough to see: the map at least 400 px wide
        write_png(path, weights, scale=int(np.clip(-(-400 // max(weights.shape[1], 1)), 8, 96)))
        return
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(columns) + 2), max(3, 0.25 * len(rows) + 1.5)))
    image = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set_xlabel("key position (earlier token)", fontsize=8)
    ax.set_ylabel("query head", fontsize=8)
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_png(path, weights: np.ndarray, scale: int = 8) -> None:
    """A grayscale PNG of weights [R, C] in [0, 1], each cell scale x scale pixels (no dependencies)."""
    pixels = np.kron((np.clip(weights, 0, 1) * 255).astype(np.uint8), np.ones((scale, scale), np.uint8))
    h, w = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))  # filter byte 0 per scanline

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def cosine_neighbours(table: np.ndarray, query: np.ndarray, k: int, exclude=()) -> list[tuple[int, float]]:
    """The k rows of table [V, D] most similar to query [D] by cosine, as (row, similarity), best first."""
    k = min(k, len(table) - len(set(exclude)))
    if k <= 0:
        return []
    norms = np.linalg.norm(table, axis=1) * np.linalg.norm(query)   # [V]
    sims = (table @ query) / np.maximum(norms, 1e-12)                # [V]
    sims[list(exclude)] = -np.inf
    best = np.argpartition(-sims, k - 1)[:k]
    best = best[np.argsort(-sims[best], kind="stable")]
    return [(int(i), float(sims[i])) for i in best]


def piece_label(tok, i: int) -> str:
    """A short printable label for a token id: its piece (▁ and Ġ kept, so spaces stay visible), and the
    readable text beside a byte-level piece (`ĠâĢĵ` is " –"); bytes that end inside a character as hex."""
    from bpe.trace import piece_bytes
    piece = repr(tok.id_to_piece(i))[1:-1]
    data = piece_bytes(tok, i)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "<" + data.hex(" ") + ">"
    if text and text.replace(" ", "\u2581") != piece and text != piece:
        return f"{piece[:12]} {text[:12]!r}" if text.isprintable() else f"{piece[:12]} {repr(text)[:14]}"
    return piece[:12]


def check_layer_head(cfg, layer: int | None, head: int | None) -> None:
    """Raise ValueError if a chosen layer or head does not exist in this model."""
    if layer is not None and not 0 <= layer < cfg.num_hidden_layers:
        raise OptionError("layer", f"{layer} is out of range: the model has {cfg.num_hidden_layers} layers "
                         f"(0..{cfg.num_hidden_layers - 1})")
    if head is not None and not 0 <= head < cfg.num_attention_heads:
        raise OptionError("head", f"{head} is out of range: the model has {cfg.num_attention_heads} heads "
                         f"(0..{cfg.num_attention_heads - 1})")


def inspect_run(model, tok, ids: list[int], *, steps: int, show_top: int, pick, layer=None, head=None,
                png_dir=None, out=print, speculate=None) -> dict:
    """Print tokens, per-step top-k tables, attention maps and hidden-state norms; return the data.

    `pick(logits)` chooses each next token (greedy or sampled). Attention maps and norms are
    those of the prompt's last token. PNGs go to `png_dir` when given (one per layer). With
    `speculate` (generate()'s keyword arguments, with a drafter), the tokens come from speculative
    decoding and each step says whether it was drafted and accepted, or drawn after rejections.
    """
    check_layer_head(model.cfg, layer, head)
    if png_dir is not None:
        if Path(png_dir).exists() and not Path(png_dir).is_dir():
            raise OptionError("png_dir", f"{png_dir} is not a directory")
        Path(png_dir).mkdir(parents=True, exist_ok=True)
    show_top = min(show_top, model.cfg.vocab_size, tok.vocab_size)
    out(f"Prompt: {len(ids)} tokens")
    out("  pos  id      piece")
    for pos, i in enumerate(ids):
        out(f"  {pos:>3}  {i:<6}  {piece_label(tok, i)}")
    model.new_cache(min(model.cfg.max_position_embeddings, len(ids) + steps))
    trace: dict = {"residual": []}
    logits = model.forward(ids, trace=trace)
    from .lens import SequenceTrace, logit_lens
    lens = logit_lens(model, SequenceTrace(list(ids), trace.pop("residual")), len(ids) - 1, k=3)
    tables = []
    steps_of = None
    if speculate is not None:              # the tokens, their logits and how each came, from generate()
        from .generate import Stats, generate
        seen, marks, stats = [], [], Stats()
        made = list(generate(model, list(ids), max_new_tokens=steps, stats=stats, observe=lambda l, t: seen.append(l),
                             mark=lambda t, how: marks.append(how), **speculate))
        steps_of = list(zip(seen, made, marks))
    for step in range(steps if steps_of is None else len(steps_of)):
        if steps_of is not None:
            logits, token, how = steps_of[step]
        top = top_tokens(logits, show_top)
        if steps_of is None:
            token, how = pick(logits), None
        tables.append((top, token))
        out(f"\nStep {step + 1}: the {len(top)} most likely next tokens" + (f" ({how})" if how else ""))
        out("  rank  id      prob     piece")
        for rank, (i, p) in enumerate(top, 1):
            out(f"  {rank:>4}  {i:<6}  {p:7.4f}  {piece_label(tok, i)}{'   <- chosen' if i == token else ''}")
        if token not in {i for i, _ in top}:
            out(f"  chosen: {token} {piece_label(tok, token)} (sampled outside the top {show_top})")
        if steps_of is not None:
            continue
        if token in tok.stop_ids or model.length >= model.cache_k.shape[2]:
            break
        logits = model.forward([token])
    if steps_of is not None:
        out("\n" + stats.speculation.report(len(made)))
    chosen = [t for _, t in tables]
    shown = [t for t in chosen if not tok.is_control(t)]
    out(f"\nGenerated ({len(chosen)} tokens): {tok.decode(shown)!r}")

    labels = [f"{p}:{piece_label(tok, i)}" for p, i in enumerate(ids)]
    layers = [layer] if layer is not None else range(model.cfg.num_hidden_layers)
    heads = [head] if head is not None else list(range(model.cfg.num_attention_heads))
    out("\nAttention of the last prompt token over the prompt (rows: heads, columns: positions)")
    if png_dir is None:
        out(shade_key())
        out("positions: " + "  ".join(labels))
    if png_dir is not None and not has_matplotlib():
        out("  (plain pixel maps, one row per head, one column per position, white = 1; "
            "pip install -e \".[viz]\" draws labelled ones with a colour bar)")
    written = []
    for li in layers:
        weights = trace["attention"][li][heads]       # [heads, S]
        rows = [f"h{h}" for h in heads]
        if png_dir is not None:
            path = f"{png_dir}/attention_layer{li:02d}.png"
            try:
                png_heatmap(path, weights, labels, rows, f"layer {li}: attention of the last token")
            except OSError as e:                      # leave no half set of maps behind
                for done in written:
                    Path(done).unlink(missing_ok=True)
                raise OSError(e.errno, e.strerror, path) from None
            written.append(path)
            out(f"  layer {li}: {path}")
        else:
            out(f"\nlayer {li}")
            out(text_heatmap(weights, labels, rows, legend=False))
    out("\nLogit lens at the last prompt token: the final norm + LM head applied after each layer (model/lens.py)")
    for n, top in enumerate(lens):
        name = "embedding" if n == 0 else f"layer {n - 1}"
        out(f"  {name:<9}  " + "   ".join(f"{piece_label(tok, i)} {p:.3f}" for i, p in top))
    out("\nHidden-state norm of the last prompt token (the residual stream growing layer by layer)")
    out("  after      norm")
    for n, value in enumerate(trace["norms"]):
        out(f"  {'embedding' if n == 0 else f'layer {n - 1}':<9}  {value:10.4f}")
    return {"trace": trace, "tables": tables}


def load_embeddings(folder) -> np.ndarray:
    """Only the embedding table [V, D] of a checkpoint folder (float32), without the other weights."""
    from .weights import checkpoint_files, load_tensors
    name = "model.embed_tokens.weight"
    files, headers = checkpoint_files(folder)
    if name not in files:
        raise ValueError(f"{folder}: the checkpoint has no {name}")
    return load_tensors(files[name], [name], header=headers[files[name]])[name]


def resolve_token(tok, text: str) -> int:
    """The id of a word-start token ("Paris" -> "▁Paris" or "ĠParis"), else of the token exactly as given."""
    if not text:
        raise ValueError("the token is empty")
    for candidate in ("\u2581" + text.replace(" ", "\u2581"), to_byte_chars(" " + text), text):
        i = tok.piece_to_id(candidate)
        if i is not None and tok.id_to_piece(i) == candidate:
            return i
    pieces = "  ".join(piece_label(tok, i) for i in tok.encode(text))
    raise ValueError(f"token {text!r} is not in the vocabulary (it encodes to the pieces: {pieces})")


def parse_arithmetic(expression: str) -> list[tuple[int, str]]:
    """Split "Paris - France + Italy" into [(+1, "Paris"), (-1, "France"), (+1, "Italy")].

    "+" and "-" are operators wherever they stand ("Paris-France" is Paris - France); every operand
    must be a token: "- Paris", "Paris +" and "+ -" are refused.
    """
    parts = re.split(r"\s*([+-])\s*", expression.strip())   # operand, op, operand, op, ...
    operands, ops = parts[0::2], parts[1::2]
    if any(not o for o in operands):
        raise OptionError("expr", f"{expression!r}: an operator without a token on each side "
                         "(write TOKEN + TOKEN - TOKEN)")
    return [(1, operands[0])] + [(1 if op == "+" else -1, o) for op, o in zip(ops, operands[1:])]
