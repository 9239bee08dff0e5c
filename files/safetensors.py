"""The safetensors container, read and written by our own code (no model, no tokenizer here).

A safetensors file is: 8 bytes (little-endian u64) header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}}` (and an optional `__metadata__` of
strings), then the raw tensor bytes. NumPy has no bfloat16, so BF16 is read as raw uint16 and
shifted into the high half of a float32 (bf16 is exactly the top 16 bits of a float32). Tensors
are converted to float32 once, chunk by chunk, so peak memory stays near the float32 size.

The file is untrusted: the header's length, every entry's dtype, shape and offsets are checked
(the tensors must tile the data exactly) before anything is read.
"""
import json
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .atomic import atomic_file

DTYPES = {"BF16": 2, "F16": 2, "F32": 4}  # supported dtype -> bytes per element
CHUNK_BYTES = 8 << 20   # tensors stream through a buffer this large


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


def load_tensors(path, names=None, threads: int = 2, header=None, into=None,
                 alloc=lambda shape: np.empty(shape, np.float32)) -> dict[str, np.ndarray]:
    """Load tensors of one safetensors file (all, or `names`) as float32 arrays (into the arrays of
    `into` where it has one by that name, else into `alloc(shape)`).

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
        out = into[name] if name in into else alloc(info["shape"])
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


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest, ties to even) and return the raw uint16 bits."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def save_safetensors(path, tensors: dict[str, np.ndarray], dtype: str = "BF16",
                     metadata: dict[str, str] | None = None) -> None:
    """Write float arrays to a safetensors file in `dtype` (BF16, F16 or F32), complete or absent."""
    header, blobs, offset = ({"__metadata__": dict(metadata)} if metadata else {}), [], 0
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
