"""Speed tricks, kept beside the math (model/llama.py, model/layers.py) and out of it. Each one is
measured on this project's 2-core machine; the math reads the same without them.

- Huge pages (new_float32): touching 4.4 GB of fresh 4 KB pages cost more than converting the
  weights; with 2 MB pages the kernel takes ~500x fewer faults (load 4.7x -> ~2x the file read).
- Lazy zeros (lazy_zeros): the KV cache holds the whole context (8192 positions for SmolLM2) but a
  prompt uses a few; small pages keep a short prompt from zeroing 2 MB per slab.
- The fused layout (layer_arena, fused_layout, fuse_layer): a layer's matrices back to back in one
  buffer in the order decoding reads them (q|k|v, o, gate|up, down), so q|k|v and gate|up are one
  mat-vec each, as views, with no copy at load. Decoding reads every weight once per token, so few,
  large matrix calls matter more than anything else.
- o_proj's zero rows (o_pad_rows): OpenBLAS computes a mat-vec on one core below 460,800 weights;
  SmolLM2's 576 x 576 o_proj reads on into 224 zero rows to get both cores (about 3% of a token).
- times_t: x W^T for 2..16 rows (a speculative check) as (W x^T)^T, ~2.5x one row's pass instead
  of ~4x (OpenBLAS packs all of W first for x @ W^T).
- Row ranges in threads (data_parallel): NumPy's elementwise passes run on one core; a block of rows
  per thread gets both (the log-softmax over a vocabulary, a LoRA step's batch halves).
"""
import mmap

import numpy as np

from .config import DTYPE, LlamaConfig

HUGE_PAGE = 2 << 20     # arrays at least this large go on transparent huge pages
SMALL_T = 16            # up to this many rows, x W^T is computed as (W x^T)^T (see times_t)


def new_float32(shape) -> np.ndarray:
    """An uninitialized float32 array; large ones on transparent huge pages.

    subtle: touching 4.4 GB of fresh 4 KB pages costs more than converting the weights;
    with 2 MB pages the kernel takes ~500x fewer faults.
    """
    n = int(np.prod(shape, dtype=np.int64))
    if n * 4 < HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(shape, dtype=DTYPE)
    region = mmap.mmap(-1, n * 4, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(region, dtype=DTYPE, count=n).reshape(shape)  # the array keeps the mapping alive


LAYER_ORDER = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
               "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")
ONE_CORE_BELOW = 460_800  # NumPy's OpenBLAS runs a mat-vec of fewer weights than this on one core


def o_pad_rows(cfg: LlamaConfig) -> int:
    """Zero rows stored after o_proj [D, H*E] so that its decode mat-vec reaches ONE_CORE_BELOW weights.

    subtle: OpenBLAS computes x W^T on a single core when W has fewer than 115200 * 4 numbers
    (interface/gemv.c). SmolLM2's o_proj (576 x 576) is below that, and one core reads memory at
    half the speed of two; reading on through 224 rows of zeros makes it a two-core call (measured
    about 3% of a token). Wider models need no pad, and much smaller ones get none: reading more
    than half as much again would cost what the second core brings.
    """
    cols, rows = cfg.num_attention_heads * cfg.head_dim, cfg.hidden_size
    if rows * cols >= ONE_CORE_BELOW or 3 * rows * cols < 2 * ONE_CORE_BELOW:
        return 0
    return -(-ONE_CORE_BELOW // cols) - rows


def layer_arena(cfg: LlamaConfig, i: int, *, huge: bool = True) -> dict[str, np.ndarray]:
    """Layer i's matrices as uninitialized float32 views of one buffer, back to back in the order the
    forward pass reads them (q, k, v, o, o's zero pad, gate, up, down): model/llama.py then reads q|k|v
    and gate|up as single matrices without copying anything."""
    D, F, H, K, E = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads,
                     cfg.head_dim)
    shapes = dict(zip(LAYER_ORDER, [(H * E, D), (K * E, D), (K * E, D), (D, H * E), (F, D), (F, D), (D, F)]))
    shapes = {f"model.layers.{i}.{n}": s for n, s in shapes.items()}
    names = list(shapes)
    pad = o_pad_rows(cfg) * cfg.num_attention_heads * cfg.head_dim
    total = sum(int(np.prod(shapes[n])) for n in names) + pad
    arena = new_float32(total) if huge else np.empty(total, np.float32)
    out, at = {}, 0
    for n in names:
        size = int(np.prod(shapes[n]))
        out[n] = arena[at:at + size].reshape(shapes[n])
        at += size
        if n.endswith("o_proj.weight"):
            arena[at:at + pad] = 0
            at += pad
    return out


def fused_layout(cfg: LlamaConfig, *, huge: bool = True) -> dict[str, np.ndarray]:
    """Uninitialized arrays for every layer's matrices, each layer in one buffer (layer_arena): loaders
    fill them in place."""
    out = {}
    for i in range(cfg.num_hidden_layers):
        out.update(layer_arena(cfg, i, huge=huge))
    return out


def lazy_zeros(shape) -> np.ndarray:
    """A float32 zero array whose memory is touched only where it is written.

    subtle: the cache holds the whole context (8192 positions for SmolLM2), but a prompt uses a
    few. On transparent huge pages, the first write into each [S, E] slab would zero 2 MB;
    small pages keep the cost of a short prompt small.
    """
    n = int(np.prod(shape)) * 4
    if n < (4 << 20) or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.zeros(shape, dtype=DTYPE)
    region = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # zero-filled by the kernel
    region.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(region, dtype=DTYPE).reshape(shape)


def _owner(a):
    """The object that owns an array's memory (the end of its chain of views)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def _address(a: np.ndarray) -> int:
    """Where an array's first element is in memory."""
    return a.__array_interface__["data"][0]


def _back_to_back(parts, gap_after: dict | None = None) -> bool:
    """True when the arrays are C-contiguous views of one buffer that follow one another, in this order
    (with `gap_after[k]` bytes between part k and the next)."""
    owner, gaps = _owner(parts[0]), gap_after or {}
    for k, (a, b) in enumerate(zip(parts, parts[1:])):
        if not (b.flags.c_contiguous and a.dtype == b.dtype and _owner(b) is owner
                and _address(a) + a.nbytes + gaps.get(k, 0) == _address(b)):
            return False
    return parts[0].flags.c_contiguous


def _span(first: np.ndarray, rows: int) -> np.ndarray:
    """The [rows, cols] matrix that starts at `first` and runs on into the memory after it (_back_to_back)."""
    return np.lib.stride_tricks.as_strided(first, shape=(rows, first.shape[1]), strides=first.strides)


def fuse_layer(cfg: LlamaConfig, w: dict, i: int) -> dict[str, np.ndarray]:
    """Layer i's q|k|v [(H+2K)E, D], gate|up [2F, D] and o_proj with its zero rows [D + pad, H*E], as views.

    subtle: the loaders put a layer's matrices back to back in one buffer, in reading order
    (fused_layout), so these are views, not copies. Weights that arrive otherwise (built in memory)
    are copied into such a buffer once; each HF name in `w` stays, as a view of its rows.
    """
    p = f"model.layers.{i}."
    names = [p + n for n in LAYER_ORDER]
    parts = [w[n] for n in names]
    pad, o_at = o_pad_rows(cfg), LAYER_ORDER.index("self_attn.o_proj.weight")
    if not _back_to_back(parts, {o_at: pad * parts[o_at].strides[0]}):
        arena = layer_arena(cfg, i)                                # on huge pages: the streams run on
        for n, x in zip(names, parts):
            arena[n][...] = x
        w.update(arena)
        parts = [w[n] for n in names]
    q, k, v, o, gate, up, down = parts
    return {"qkv": _span(q, len(q) + len(k) + len(v)), "o_padded": _span(o, len(o) + pad),
            "gate_up": _span(gate, len(gate) + len(up))}


def joined(parts: list[np.ndarray]) -> np.ndarray:
    """The matrices stacked by rows: a view when they lie back to back in one buffer, else a copy."""
    if _back_to_back(parts):
        return _span(parts[0], sum(len(p) for p in parts))
    return np.concatenate(parts)


def times_t(x: np.ndarray, weight: np.ndarray, padded: np.ndarray | None = None) -> np.ndarray:
    """x W^T      x: [..., I], W: [O, I] -> [..., O]

    subtle: for a few rows (a speculative check of T = 2..9 tokens) OpenBLAS's x @ W^T packs all
    of W first and costs ~4x one row's pass; (W x^T)^T costs ~2.5x. One row is a mat-vec either way,
    and reads on into `padded` (W with zero rows after it) when given, for OpenBLAS's two cores.
    """
    if x.ndim > 2:                                            # [B, T, I]: one product over all B*T rows
        return times_t(x.reshape(-1, x.shape[-1]), weight).reshape(*x.shape[:-1], len(weight))
    if padded is not None and x.shape[0] == 1:
        return (x @ padded.T)[:, :len(weight)]
    if 1 < x.shape[0] <= SMALL_T and x.ndim == 2:
        return (weight @ x.T).T
    return x @ weight.T


def _openblas():
    """NumPy's OpenBLAS (ctypes), found among the loaded libraries, or None."""
    global _BLAS
    if _BLAS is False:
        import ctypes
        import re
        _BLAS = None
        try:
            maps = open("/proc/self/maps", encoding="utf-8").read()
        except OSError:
            return None
        for path in dict.fromkeys(re.findall(r"(/\S*openblas\S*\.so\S*)", maps)):
            lib = ctypes.CDLL(path)
            if hasattr(lib, "openblas_set_num_threads_local"):
                _BLAS = lib
                break
    return _BLAS


_BLAS = False


SMALL_WORK = 1 << 20     # elements: below this, starting threads costs more than they save


def data_parallel(work, n: int, parts: int = 2, *, one_blas_thread: bool = True, row_size: int = SMALL_WORK) -> list:
    """[work(a, b) for the row ranges [a, b) of 0..n], each range in its own thread.

    NumPy's ufuncs let go of the GIL on large arrays, so the elementwise passes, single-threaded in
    NumPy, run on both cores this way. With one_blas_thread (OpenBLAS's per-thread setting), each
    thread's matrix calls use one BLAS thread, so a whole forward and backward can run per range.
    Measured: the log-softmax of Gemma 3's 255 x 262,144 logits, 0.29 s on one core -> 0.05 s (in L2
    sized blocks, model/evaluation/perplexity.py); a LoRA step of SmolLM2 (batch 4 x 256), 4.3 s as
    one batch on two BLAS threads -> 3.2 s as two halves. Without the per-thread setting, or with
    fewer rows than parts, or less work than SMALL_WORK elements (n * row_size; row_size's default says one
    row, e.g. a sequence's whole forward, is always worth a thread): [work(0, n)]. An exception in any range
    is raised again here.
    """
    import threading
    blas = _openblas() if one_blas_thread else None
    if n < parts or n * row_size < SMALL_WORK or (one_blas_thread and blas is None):
        return [work(0, n)]
    bounds = np.linspace(0, n, parts + 1).astype(int)
    results, errors = [None] * parts, []

    def run(k: int) -> None:
        previous = blas.openblas_set_num_threads_local(1) if blas else None
        try:
            results[k] = work(int(bounds[k]), int(bounds[k + 1]))
        except BaseException as e:                # raised again in the caller's thread
            errors.append(e)
        finally:
            if blas:
                blas.openblas_set_num_threads_local(previous)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
