"""The GGUF container (llama.cpp's model file), read from the specification: no math here.

    "GGUF" | version u32 (2 or 3) | tensor count u64 | metadata count u64
    metadata:  key (string) | value type u32 | value
    tensors:   name (string) | n_dims u32 | dims u64 x n_dims | type u32 | offset u64
    padding to `general.alignment` (default 32), then the tensor data
A string is a u64 length and UTF-8 bytes; an array is an element type u32, a count u64 and the
elements. Everything is little-endian. dims[0] is the fastest-moving (a row), so a tensor with
dims [576, 49152] is the NumPy array [49152, 576].

The file is untrusted: every count, length and offset is checked against the bytes that are left
(with Python integers) before anything is allocated or sliced, and every problem is a GGUFError
naming the file. Tensor data is not read here; `tensor_bytes` returns one tensor's raw bytes.
The header is parsed from a memory map (closed after); tensors are read with plain reads into
one reused buffer, so no page of the file stays resident once its tensor is converted.
"""
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .quants import LAYOUTS

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
# value type id -> (name, struct format); 8 string and 9 array are read by hand
SCALARS = {0: ("u8", "<B"), 1: ("i8", "<b"), 2: ("u16", "<H"), 3: ("i16", "<h"), 4: ("u32", "<I"), 5: ("i32", "<i"),
           6: ("f32", "<f"), 7: ("bool", "<?"), 10: ("u64", "<Q"), 11: ("i64", "<q"), 12: ("f64", "<d")}
STRING, ARRAY = 8, 9


class GGUFError(ValueError):
    """A GGUF file that is malformed or that we cannot use, with the file named."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies: its GGML type, its NumPy shape, its byte range in the file."""
    name: str
    type: int
    shape: tuple[int, ...]   # NumPy order: the reverse of GGUF's dims
    offset: int              # absolute, in the file
    nbytes: int


class GGUFFile:
    """A parsed GGUF header: `metadata` {key: value} and `tensors` {name: TensorInfo}."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                self.size = f.seek(0, 2)
                if self.size < 24:
                    raise GGUFError(f"{self.path}: not a GGUF file (too short for a header)")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise GGUFError(f"cannot read {self.path}: {e.strerror or e}") from None
        try:
            self._parse()
        finally:
            self._map.close()  # the header is parsed; tensor data is read with plain reads

    # --- bounded reading ----------------------------------------------------------------------
    def _fail(self, what: str):
        raise GGUFError(f"{self.path}: {what}")

    def _take(self, n: int) -> bytes:
        if n < 0 or n > self.size - self.pos:
            self._fail(f"truncated or corrupted at byte {self.pos}: {n} bytes needed, "
                       f"{self.size - self.pos} left")
        data = self._map[self.pos:self.pos + n]
        self.pos += n
        return data

    def _scalar(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self._take(size))[0]

    def _string(self, what: str) -> str:
        n = self._scalar("<Q")
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError:
            self._fail(f"{what} is not valid UTF-8 (at byte {self.pos - n})")

    def _strings(self, count: int, key: str) -> list[str]:
        """`count` strings in a row (the vocabulary: tens of thousands), each bounded like _string."""
        data, pos, size, out = self._map, self.pos, self.size, []
        length = struct.Struct("<Q").unpack_from
        try:
            for _ in range(count):
                if size - pos < 8:
                    break
                (n,) = length(data, pos)
                if n > size - pos - 8:
                    break
                out.append(data[pos + 8:pos + 8 + n].decode("utf-8"))
                pos += 8 + n
        except UnicodeDecodeError:
            self._fail(f"an element of {key} is not valid UTF-8 (at byte {pos + 8})")
        if len(out) < count:
            self._fail(f"truncated or corrupted in the strings of {key} (at byte {pos})")
        self.pos = pos
        return out

    def _value(self, kind: int, key: str):
        if kind in SCALARS:
            return self._scalar(SCALARS[kind][1])
        if kind == STRING:
            return self._string(f"the value of {key}")
        if kind != ARRAY:
            self._fail(f"metadata {key} has unknown value type {kind}")
        item, count = self._scalar("<I"), self._scalar("<Q")
        if item in SCALARS:
            fmt = SCALARS[item][1]
            raw = self._take(count * struct.calcsize(fmt)) if count <= self.size else self._take(self.size + 1)
            return np.frombuffer(raw, dtype=np.dtype(fmt)).tolist()
        if item == STRING:
            if count > (self.size - self.pos) // 8:  # each string needs at least its 8-byte length
                self._fail(f"metadata {key} claims {count} strings, more than the file can hold")
            return self._strings(count, key)
        self._fail(f"metadata {key} is an array of unsupported type {item}")

    # --- the header ---------------------------------------------------------------------------
    def _parse(self) -> None:
        self.pos = 0
        if self._take(4) != MAGIC:
            self._fail("not a GGUF file (bad magic)")
        self.version = self._scalar("<I")
        if self.version not in VERSIONS:
            self._fail(f"GGUF version {self.version} is not supported (only {' and '.join(map(str, VERSIONS))})")
        n_tensors, n_kv = self._scalar("<Q"), self._scalar("<Q")
        left = self.size - self.pos
        if n_kv > left // 12 or n_tensors > left // 24:  # the smallest entry of each kind
            self._fail(f"header claims {n_tensors} tensors and {n_kv} metadata entries; the file is too small")
        self.metadata: dict = {}
        for _ in range(n_kv):
            key = self._string("a metadata key")
            if not key:
                self._fail("empty metadata key")
            if key in self.metadata:
                self._fail(f"duplicate metadata key {key}")
            self.metadata[key] = self._value(self._scalar("<I"), key)
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
            self._fail(f"general.alignment {alignment!r} is not a power of two")
        infos = []
        for _ in range(n_tensors):
            name = self._string("a tensor name")
            n_dims = self._scalar("<I")
            if not 1 <= n_dims <= MAX_DIMS:
                self._fail(f"tensor {name} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
            dims = [self._scalar("<Q") for _ in range(n_dims)]
            kind, offset = self._scalar("<I"), self._scalar("<Q")
            infos.append((name, dims, kind, offset))
        data_start = -(-self.pos // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        spans = []
        for name, dims, kind, offset in infos:
            info = self._check_tensor(name, dims, kind, offset, data_start, alignment)
            spans.append((info.offset, info.offset + info.nbytes, name))
        spans.sort()
        for (a0, a1, a), (b0, b1, b) in zip(spans, spans[1:]):
            if b0 < a1:
                self._fail(f"tensors {a} and {b} overlap")

    def _check_tensor(self, name, dims, kind, offset, data_start, alignment) -> TensorInfo:
        if not name:
            self._fail("a tensor has an empty name")
        if name in self.tensors:
            self._fail(f"duplicate tensor name {name}")
        if kind not in LAYOUTS:
            self._fail(f"tensor {name} has unknown type {kind}")
        qtype = LAYOUTS[kind]
        if any(d <= 0 for d in dims):
            self._fail(f"tensor {name} has a zero dimension {dims}")
        count = 1
        for d in dims:
            count *= d
        if count > self.size * 8 or dims[0] % qtype.block:  # Python ints: no overflow to hide
            self._fail(f"tensor {name}: dims {dims} do not fit the file or its {qtype.name} blocks of {qtype.block}")
        nbytes = count // qtype.block * qtype.block_bytes
        if offset % alignment:
            self._fail(f"tensor {name} is misaligned (offset {offset} is not a multiple of {alignment})")
        start = data_start + offset
        if start + nbytes > self.size:
            self._fail(f"tensor {name} ({nbytes} bytes at {start}) lies past the end of the file "
                       f"({self.size} bytes; truncated?)")
        info = TensorInfo(name, kind, tuple(reversed(dims)), start, nbytes)
        self.tensors[name] = info
        return info

    def tensor_row_blocks(self, info: TensorInfo, block_bytes: int = 16 << 20):
        """A tensor's raw bytes a block of whole rows at a time: yields (first row, end row, bytes), the
        bytes in one reused buffer (so a 178 MB embedding never sits in memory whole, quantized)."""
        rows = info.shape[0] if info.shape else 1
        row_bytes = info.nbytes // max(rows, 1)
        step = max(1, block_bytes // max(row_bytes, 1))
        buf = bytearray(min(rows, step) * row_bytes)
        with open(self.path, "rb", buffering=0) as f:
            f.seek(info.offset)
            for a in range(0, rows, step):
                n = (min(rows, a + step) - a) * row_bytes
                view, got = memoryview(buf)[:n], 0
                while got < n:
                    k = f.readinto(view[got:])
                    if not k:
                        raise GGUFError(f"{self.path}: tensor {info.name} is cut short (the file changed?)")
                    got += k
                yield a, min(rows, a + step), view

    def tensor_bytes(self, info: TensorInfo, out: bytearray | None = None) -> bytearray:
        """One tensor's raw bytes, read from the file (into `out` when given)."""
        buf = out if out is not None else bytearray(info.nbytes)
        with open(self.path, "rb", buffering=0) as f:
            f.seek(info.offset)
            view, got = memoryview(buf)[:info.nbytes], 0
            while got < info.nbytes:
                n = f.readinto(view[got:])
                if not n:
                    raise GGUFError(f"{self.path}: tensor {info.name} is cut short (the file changed?)")
                got += n
        return buf
