"""Checkpoint files: safetensors read and written by our own code, and the checked weight map.

A safetensors file is: 8 bytes (little-endian u64) header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}}`, then the raw tensor bytes.
NumPy has no bfloat16, so BF16 is read as raw uint16 and shifted into the high half of a
float32 (bf16 is exactly the top 16 bits of a float32). Tensors are converted to float32
once, chunk by chunk, so peak memory stays near the float32 weight size.
"""
import json
import mmap
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bpe.files import atomic_file

from ..config import DTYPE, LlamaConfig

DTYPES = {"BF16": 2, "F16": 2, "F32": 4}  # supported dtype -> bytes per element
CHUNK_BYTES = 8 << 20   # tensors stream through a buffer this large
HUGE_PAGE = 2 << 20     # arrays at least this large go on transparent huge pages


class WeightsError(ValueError):
    """Raised for a checkpoint we cannot load, with the file and tensor named."""


def read_header(path) -> tuple[dict, int]:
    """Parse a safetensors header; return ({name: info}, byte offset where the data starts)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path}: truncated safetensors file (no header)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 << 20:
                raise WeightsError(f"{path}: corrupted safetensors header (length {n} for a {size}-byte file)")
            header = json.loads(f.read(n))
    except OSError as e:
        raise WeightsError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WeightsError(f"{path}: corrupted safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: corrupted safetensors header")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise WeightsError(f"{path}: corrupted safetensors header (__metadata__ must map strings to strings)")
    start, data_size = 8 + n, size - 8 - n
    spans = []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise WeightsError(f"{path}: corrupted entry for tensor {name}") from None
        if not isinstance(dtype, str) or not isinstance(shape, list) or \
                not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in shape) or \
                not all(isinstance(o, int) and not isinstance(o, bool) for o in (begin, end)):
            raise WeightsError(f"{path}: corrupted entry for tensor {name} (dtype, shape or offsets of the wrong type)")
        if dtype not in DTYPES:
            raise WeightsError(f"{path}: tensor {name} has dtype {dtype}; supported: {', '.join(DTYPES)}")
        if not 0 <= begin <= end <= data_size:
            raise WeightsError(f"{path}: tensor {name} lies past the end of the file (truncated?)")
        count = 1
        for d in shape:  # Python ints: no overflow
            count *= d
        if end - begin != count * DTYPES[dtype]:
            raise WeightsError(f"{path}: tensor {name} has {end - begin} bytes for shape {shape} {dtype}")
        spans.append((begin, end, name))
    # as safetensors' own validator: the tensors tile the data exactly, in order, no gaps or overlaps
    spans.sort()
    covered = 0
    for begin, end, name in spans:
        if begin != covered:
            raise WeightsError(f"{path}: tensor {name} starts at {begin}, expected {covered} (gap or overlap)")
        covered = end
    if covered != data_size:
        raise WeightsError(f"{path}: {data_size - covered} bytes after the last tensor (corrupted?)")
    return header, start


def to_float32(raw: np.ndarray, dtype: str, out: np.ndarray) -> np.ndarray:
    """Convert raw little-endian BF16 / F16 / F32 values into the float32 array `out`."""
    if dtype == "BF16":  # bf16 bits are the top half of the float32 bits
        np.left_shift(raw.view(np.uint16), 16, out=out.view(np.uint32), dtype=np.uint32)
    elif dtype == "F16":
        out[...] = raw.view(np.float16)
    else:
        out[...] = raw.view(np.float32)
    return out


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
    shapes = expected_shapes(cfg)
    names = [f"model.layers.{i}.{n}" for n in LAYER_ORDER]
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


def load_tensors(path, names=None, threads: int = 2, header=None, into=None) -> dict[str, np.ndarray]:
    """Load tensors of one safetensors file (all, or `names`) as float32 arrays (into the arrays of
    `into` where it has one by that name).

    Each tensor streams through a small buffer (read, convert, next chunk), so the file is
    never held in memory whole and the buffer stays in cache; two threads convert in parallel
    (NumPy releases the GIL).
    """
    into = into or {}
    header, start = header or read_header(path)  # (header, data start), if the caller has read it
    names = list(header) if names is None else names

    def load(name):
        info = header[name]
        begin, end = info["data_offsets"]
        size = DTYPES[info["dtype"]]
        out = into[name] if name in into else new_float32(info["shape"])
        flat = out.reshape(-1)
        buf = bytearray(min(CHUNK_BYTES, max(end - begin, 1)))
        with open(path, "rb", buffering=0) as f:
            f.seek(start + begin)
            done, n = 0, flat.size
            while done < n:
                k = min(len(buf) // size, n - done)
                view = memoryview(buf)[:k * size]
                got = 0
                while got < len(view):
                    r = f.readinto(view[got:])
                    if not r:
                        raise WeightsError(f"{path}: tensor {name} is cut short (truncated file?)")
                    got += r
                to_float32(np.frombuffer(buf, dtype=np.uint8, count=k * size), info["dtype"], flat[done:done + k])
                done += k
        return name, out

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(pool.map(load, names))


def checkpoint_files(folder) -> tuple[dict[str, Path], dict[Path, tuple]]:
    """Map each tensor name to its file (`model.safetensors`, or the shards of an index),
    and each file to its parsed header (read once)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            raise WeightsError(f"{index}: not a valid safetensors index (no weight_map)") from None
        if not isinstance(weight_map, dict):
            raise WeightsError(f"{index}: weight_map must be an object {{tensor: file}}")
        for name, file in weight_map.items():
            # a shard is a plain file name inside the model folder: never a path that climbs out
            if not isinstance(file, str) or not file or file in (".", "..") or "/" in file or "\\" in file \
                    or "\0" in file:
                raise WeightsError(f"{index}: shard {str(file)[:80]!r} for {name} is not a file name in the folder")
        files = {name: folder / file for name, file in weight_map.items()}
        return files, {path: read_header(path) for path in set(files.values())}
    single = folder / "model.safetensors"
    if not single.exists():
        raise WeightsError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    header = read_header(single)
    return {name: single for name in header[0]}, {single: header}


def expected_shapes(cfg: LlamaConfig) -> dict[str, tuple]:
    """Every tensor a Llama checkpoint must hold (HF names), with its shape."""
    D, F, H, K, E, V = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads,
                        cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size)
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, D)
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (D,),
            p + "self_attn.q_proj.weight": (H * E, D),
            p + "self_attn.k_proj.weight": (K * E, D),
            p + "self_attn.v_proj.weight": (K * E, D),
            p + "self_attn.o_proj.weight": (D, H * E),
            p + "post_attention_layernorm.weight": (D,),
            p + "mlp.gate_proj.weight": (F, D),
            p + "mlp.up_proj.weight": (F, D),
            p + "mlp.down_proj.weight": (D, F),
        })
        if cfg.qkv_bias:  # Qwen2
            shapes.update({p + "self_attn.q_proj.bias": (H * E,), p + "self_attn.k_proj.bias": (K * E,),
                           p + "self_attn.v_proj.bias": (K * E,)})
        if cfg.o_bias:    # Llama with attention_bias
            shapes[p + "self_attn.o_proj.bias"] = (D,)
    return shapes


def load_checkpoint(folder, cfg: LlamaConfig, into=None) -> dict[str, np.ndarray]:
    """Load and check every tensor of an HF-layout checkpoint folder, as float32 by HF name
    (into the arrays of `into`, such as fused_layout(cfg), where it has them)."""
    files, headers = checkpoint_files(folder)
    shapes = expected_shapes(cfg)
    ignorable = [n for n in files if n.endswith("rotary_emb.inv_freq")]  # recomputed from rope_theta
    if cfg.tie_word_embeddings:
        ignorable += [n for n in files if n == "lm_head.weight"]
    missing = [n for n in shapes if n not in files]
    extra = [n for n in files if n not in shapes and n not in ignorable]
    if missing:
        raise WeightsError(f"{folder}: checkpoint is missing {len(missing)} tensors, e.g. {missing[0]}")
    if extra:
        raise WeightsError(f"{folder}: checkpoint has unexpected tensors, e.g. {extra[0]}")
    by_file: dict[Path, list[str]] = {}
    for name in shapes:
        by_file.setdefault(files[name], []).append(name)
    weights = {}
    for path, names in by_file.items():
        header = headers[path][0]
        for name in names:
            if name not in header:
                raise WeightsError(f"{path}: tensor {name} (named in the index) is not in this file")
            if tuple(header[name]["shape"]) != shapes[name]:
                raise WeightsError(f"{path}: tensor {name} has shape {tuple(header[name]['shape'])}, "
                                   f"expected {shapes[name]} from config.json")
        weights.update(load_tensors(path, names, header=headers[path], into=into))
    return weights


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest, ties to even) and return the raw uint16 bits."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def save_safetensors(path, tensors: dict[str, np.ndarray], dtype: str = "BF16") -> None:
    """Write float arrays to a safetensors file in `dtype` (BF16, F16 or F32)."""
    header, blobs, offset = {}, [], 0
    for name, x in tensors.items():
        if dtype == "BF16":
            raw = float32_to_bf16_bits(x).tobytes()
        else:
            raw = np.ascontiguousarray(x, dtype=np.float16 if dtype == "F16" else np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(x.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with atomic_file(path) as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in blobs:
            f.write(raw)
