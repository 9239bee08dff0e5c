"""loss.png: the loss against the step, from log.jsonl (evaluations) and steps.jsonl (each step's batch).

With matplotlib (the `viz` extra) a labelled chart; without it, our own small RGB PNG (a grid, each
step's batch loss in pale blue, the train estimate in blue, the validation estimate in orange, the
final whole-split validation as a red dot; the numbers are in the two logs).
"""
import json
import os
import struct
import zlib

from pathlib import Path

import numpy as np

from files.atomic import write_atomic

BLUE, ORANGE, RED, GREY = (0, 114, 178), (230, 159, 0), (213, 94, 0), (200, 200, 200)   # Okabe-Ito: safe for
PALE_BLUE = (160, 200, 230)                                                              # colour blindness


def read_rows(path) -> list[dict]:
    """A JSONL log's rows, the last one written for each step (a resumed run logs its steps again)."""
    if not path.is_file():
        return []
    rows = {}
    for line in open(path, encoding="utf-8"):
        if line.strip():
            row = json.loads(line)
            rows[row["step"]] = row
    return [rows[k] for k in sorted(rows)]


def loss_png(log_path, png_path) -> None:
    """Draw each step's batch loss (steps.jsonl beside log.jsonl), the evaluations' estimates, and the
    final evaluation over the whole validation split as a point of its own (not joined to the estimates)."""
    log_path = Path(log_path)
    rows = read_rows(log_path)
    steps = [r for r in read_rows(log_path.with_name("steps.jsonl")) if r["step"] <= rows[-1]["step"]]
    estimates = [r for r in rows if not r.get("whole_val")]
    whole = [r for r in rows if r.get("whole_val")]
    x = lambda rs: np.array([r["step"] for r in rs], float)                 # noqa: E731
    y = lambda rs, key: np.array([r[key] for r in rs], float)              # noqa: E731
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        series = [(x(steps), y(steps, "loss"), PALE_BLUE, 1), (x(rows), y(rows, "train_loss"), BLUE, 2),
                  (x(estimates), y(estimates, "val_loss"), ORANGE, 2), (x(whole), y(whole, "val_loss"), RED, 5)]
        write_atomic(png_path, plain_chart([s for s in series if len(s[0])]))
        return
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    rgb = lambda c: np.array(c) / 255                                      # noqa: E731
    if steps:
        ax.plot(x(steps), y(steps, "loss"), color=rgb(PALE_BLUE), lw=0.8, label="train, each step's batch")
    ax.plot(x(rows), y(rows, "train_loss"), "o-", ms=3, color=rgb(BLUE), label="train (estimate)")
    ax.plot(x(estimates), y(estimates, "val_loss"), "o-", ms=3, color=rgb(ORANGE), label="validation (estimate)")
    if whole:
        ax.plot(x(whole), y(whole, "val_loss"), "*", ms=11, color=rgb(RED), label="validation, whole split (final)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = str(png_path) + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)


def plain_chart(series, w: int = 480, h: int = 320, pad: int = 20) -> bytes:
    """An RGB PNG of series (x, y, colour, width): lines, or a square dot for a single point; a grid every quarter."""
    img = np.full((h, w, 3), 255, np.uint8)
    xs, ys = np.concatenate([s[0] for s in series]), np.concatenate([s[1] for s in series])
    lo, hi = float(ys.min()), float(ys.max())
    x0, span_x, span_y = float(xs.min()), max(float(xs.max() - xs.min()), 1.0), max(hi - lo, 1e-9)
    for k in range(5):  # grid
        img[pad + k * (h - 2 * pad) // 4, pad:w - pad] = GREY
        img[pad:h - pad, pad + k * (w - 2 * pad) // 4] = GREY
    to_px = lambda xv, yv: (pad + (xv - x0) / span_x * (w - 2 * pad),  # noqa: E731
                            h - pad - (yv - lo) / span_y * (h - 2 * pad))
    for x, values, colour, width in series:
        px, py = to_px(x, values)
        if len(px) == 1:
            cx, cy = int(px[0]), int(py[0])
            img[max(cy - width, 0):cy + width, max(cx - width, 0):cx + width] = colour
        for i in range(len(px) - 1):
            n = int(max(abs(px[i + 1] - px[i]), abs(py[i + 1] - py[i]))) + 1
            for t in np.linspace(0, 1, n):
                cx, cy = int(px[i] + t * (px[i + 1] - px[i])), int(py[i] + t * (py[i + 1] - py[i]))
                img[max(cy - width // 2, 0):cy + (width + 1) // 2, max(cx - width // 2, 0):cx + (width + 1) // 2] = colour
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
