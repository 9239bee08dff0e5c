"""loss.png: train and validation loss against the step, from log.jsonl.

With matplotlib (the `viz` extra) a labelled chart; without it, our own small RGB PNG (axes,
a grid, train in blue and validation in orange; the numbers are in log.jsonl).
"""
import json
import struct
import zlib

import numpy as np

from files.atomic import write_atomic

BLUE, ORANGE, GREY = (0, 114, 178), (230, 159, 0), (200, 200, 200)   # Okabe-Ito: safe for colour blindness


def loss_png(log_path, png_path) -> None:
    """Draw the curves of every evaluation logged so far."""
    rows = [json.loads(line) for line in open(log_path, encoding="utf-8") if line.strip()]
    steps = np.array([r["step"] for r in rows], float)
    train, val = np.array([r["train_loss"] for r in rows]), np.array([r["val_loss"] for r in rows])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        write_atomic(png_path, plain_chart(steps, [(train, BLUE), (val, ORANGE)]))
        return
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(steps, train, color=np.array(BLUE) / 255, label="train")
    ax.plot(steps, val, color=np.array(ORANGE) / 255, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = str(png_path) + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    import os
    os.replace(tmp, png_path)


def plain_chart(x: np.ndarray, series, w: int = 480, h: int = 320, pad: int = 20) -> bytes:
    """An RGB PNG of lines (y against x), axes at the edges, a grid every quarter."""
    img = np.full((h, w, 3), 255, np.uint8)
    ys = np.concatenate([s for s, _ in series])
    lo, hi = float(ys.min()), float(ys.max()) or 1.0
    span_x, span_y = max(float(x.max() - x.min()), 1.0), max(hi - lo, 1e-9)
    for k in range(5):  # grid
        img[pad + k * (h - 2 * pad) // 4, pad:w - pad] = GREY
        img[pad:h - pad, pad + k * (w - 2 * pad) // 4] = GREY
    to_px = lambda xv, yv: (pad + (xv - x.min()) / span_x * (w - 2 * pad),  # noqa: E731
                            h - pad - (yv - lo) / span_y * (h - 2 * pad))
    for values, colour in series:
        px, py = to_px(x, values)
        for i in range(len(px) - 1):
            n = int(max(abs(px[i + 1] - px[i]), abs(py[i + 1] - py[i]))) + 1
            for t in np.linspace(0, 1, n):
                cx, cy = int(px[i] + t * (px[i + 1] - px[i])), int(py[i] + t * (py[i + 1] - py[i]))
                img[max(cy - 1, 0):cy + 1, max(cx - 1, 0):cx + 1] = colour
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
