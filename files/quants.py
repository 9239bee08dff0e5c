"""Dequantization of GGML tensor types to float32, one vectorized NumPy function per type.

A quantized row is a run of blocks; each block stores small integers q and one or two float16
numbers that scale them back. Every function takes the raw bytes of whole blocks as a uint8
array [N, block_bytes] and returns float32 [N, block]. f16 means IEEE half precision.

The K-quants (Q2_K .. Q6_K) use super-blocks of 256 values in 16 (Q2_K, Q3_K, Q6_K) or 8 (Q4_K,
Q5_K) sub-blocks, each with its own scale (and min), stored as small integers themselves and
multiplied by the super-block's f16 `d` (and `dmin`). Q4_K and Q5_K pack eight 6-bit scales and
eight 6-bit mins into 12 bytes: for sub-block j < 4, scale = b[j] & 63 and min = b[j+4] & 63;
for j >= 4, scale = (b[j+4] & 15) | (b[j-4] >> 6) << 4 and min = (b[j+4] >> 4) | (b[j] >> 6) << 4
(the spare top two bits of the first eight bytes hold the high bits of the last four).
Q3_K packs sixteen 6-bit scales into 12 bytes the same way in spirit: the low 4 bits in the first
8 bytes (two per byte), the high 2 bits in the last 4 (four per byte), with 32 subtracted.

A file's name tells its main type only: llama.cpp keeps some tensors more precise (even an
all-Q4_0 file stores output.weight as Q6_K; Q4_K_M uses Q6_K for attn_v and ffn_down), and
falls back to IQ4_NL or Q5_0 for K-quant tensors whose rows are not a multiple of 256 (as in
SmolLM2 and Qwen2.5-0.5B). So every type here can appear in any file.
"""
from dataclasses import dataclass

import numpy as np

QK_K = 256
IQ4_NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.float32)


def _f16(raw: np.ndarray) -> np.ndarray:
    """Two bytes per row as float16 -> float32 [N, 1]."""
    return np.ascontiguousarray(raw).view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """[N, 16] bytes -> [N, 32]: the 16 low nibbles, then the 16 high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def f32(raw):
    """F32: the values as they are."""
    return np.ascontiguousarray(raw).view(np.float32)


def f16(raw):
    """F16: IEEE half precision."""
    return np.ascontiguousarray(raw).view(np.float16).astype(np.float32)


def bf16(raw):
    """BF16: the top 16 bits of a float32 (shifted back up)."""
    return (np.ascontiguousarray(raw).view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def q8_0(raw):
    """Q8_0, 32 values in 34 bytes: d f16 | q int8[32].   x = d * q"""
    return _f16(raw[:, 0:2]) * raw[:, 2:].view(np.int8).astype(np.float32)


def q4_0(raw):
    """Q4_0, 32 values in 18 bytes: d f16 | qs[16] (value j in the low nibble of byte j, value
    j+16 in its high nibble).   x = d * (q - 8)"""
    return _f16(raw[:, 0:2]) * (_nibbles(raw[:, 2:]).astype(np.float32) - 8)


def q4_1(raw):
    """Q4_1, 32 values in 20 bytes: d f16 | m f16 | qs[16] (nibbles as Q4_0).   x = d * q + m"""
    return _f16(raw[:, 0:2]) * _nibbles(raw[:, 4:]).astype(np.float32) + _f16(raw[:, 2:4])


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """[N, 4] bytes = a little-endian u32 -> [N, 32] bits, bit j for value j."""
    return np.unpackbits(qh, axis=1, bitorder="little")


def q5_0(raw):
    """Q5_0, 32 values in 22 bytes: d f16 | qh u32 (bit j = 5th bit of value j) | qs[16] (low
    4 bits, as Q4_0).   x = d * ((q | h << 4) - 16)"""
    q = _nibbles(raw[:, 6:]) | (_fifth_bits(raw[:, 2:6]) << 4)
    return _f16(raw[:, 0:2]) * (q.astype(np.float32) - 16)


def q5_1(raw):
    """Q5_1, 32 values in 24 bytes: d f16 | m f16 | qh u32 | qs[16].   x = d * (q | h << 4) + m"""
    q = _nibbles(raw[:, 8:]) | (_fifth_bits(raw[:, 4:8]) << 4)
    return _f16(raw[:, 0:2]) * q.astype(np.float32) + _f16(raw[:, 2:4])


def iq4_nl(raw):
    """IQ4_NL, 32 values in 18 bytes: d f16 | qs[16] (nibbles as Q4_0), each nibble an index into
    a fixed non-linear table of 16 levels.   x = d * table[q]"""
    return _f16(raw[:, 0:2]) * IQ4_NL_VALUES[_nibbles(raw[:, 2:])]


def q2_k(raw):
    """Q2_K, 256 values in 84 bytes: scales[16] (low nibble scale, high nibble min) | qs[64]
    (2 bits each) | d f16 | dmin f16. Value order: for each 128-half, for shift 0, 2, 4, 6, the
    32 bytes' bits at that shift (16 values per scale).   x = d * sc * q - dmin * m"""
    n = len(raw)
    scales, qs = raw[:, :16], raw[:, 16:80].reshape(n, 2, 1, 32)
    d, dmin = _f16(raw[:, 80:82]), _f16(raw[:, 82:84])
    q = (qs >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3      # [N, 2, 4, 32]
    q = q.reshape(n, 16, 16).astype(np.float32)                                # 16 groups of 16
    sc, m = (scales & 0x0F).astype(np.float32), (scales >> 4).astype(np.float32)
    return (d * sc)[:, :, None] * q - (dmin * m)[:, :, None]


def q3_k(raw):
    """Q3_K, 256 values in 110 bytes: hmask[32] (3rd bit) | qs[64] (low 2 bits) | scales[12]
    (sixteen 6-bit, see the module doc) | d f16. Order as Q2_K; the high bit of value (half h,
    shift s, byte l) is bit 4h + s/2 of hmask[l].   x = d * (sc - 32) * (q - (hbit ? 0 : 4))"""
    n = len(raw)
    hmask, qs, packed = raw[:, :32], raw[:, 32:96].reshape(n, 2, 1, 32), raw[:, 96:108]
    d = _f16(raw[:, 108:110])
    low = (qs >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3       # [N, 2, 4, 32]
    hbits = np.unpackbits(hmask[:, None, :], axis=1, bitorder="little")         # [N, 8, 32]
    q = low.reshape(n, 8, 32).astype(np.int8) - np.where(hbits, 0, 4).astype(np.int8)
    a = packed.astype(np.int16)
    lo = np.concatenate([a[:, 0:8] & 0x0F, a[:, 0:8] >> 4], axis=1)             # [N, 16] low 4 bits
    hi = np.concatenate([(a[:, 8:12] >> s) & 3 for s in (0, 2, 4, 6)], axis=1)  # [N, 16] high 2 bits
    sc = (lo | (hi << 4)).astype(np.float32) - 32
    return (d * sc)[:, :, None] * q.reshape(n, 16, 16).astype(np.float32)


def _scale_min_k4(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K / Q5_K: 12 bytes -> eight 6-bit scales and eight 6-bit mins (module doc)."""
    b = packed.astype(np.uint8)
    sc = np.concatenate([b[:, 0:4] & 63, (b[:, 8:12] & 0x0F) | ((b[:, 0:4] >> 6) << 4)], axis=1)
    m = np.concatenate([b[:, 4:8] & 63, (b[:, 8:12] >> 4) | ((b[:, 4:8] >> 6) << 4)], axis=1)
    return sc.astype(np.float32), m.astype(np.float32)


def q4_k(raw):
    """Q4_K, 256 values in 144 bytes: d f16 | dmin f16 | scales[12] | qs[128]. Each 64 values are
    32 bytes: low nibbles (sub-block 2i) then high nibbles (2i+1).   x = d * sc * q - dmin * m"""
    n = len(raw)
    d, dmin = _f16(raw[:, 0:2]), _f16(raw[:, 2:4])
    sc, m = _scale_min_k4(raw[:, 4:16])
    qs = raw[:, 16:144].reshape(n, 4, 1, 32)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(n, 8, 32).astype(np.float32)
    return (d * sc)[:, :, None] * q - (dmin * m)[:, :, None]


def q5_k(raw):
    """Q5_K, 256 values in 176 bytes: d f16 | dmin f16 | scales[12] | qh[32] | qs[128]. As Q4_K,
    plus a 5th bit: for sub-block j, bit j of qh[l].   x = d * sc * (q | h << 4) - dmin * m"""
    n = len(raw)
    d, dmin = _f16(raw[:, 0:2]), _f16(raw[:, 2:4])
    sc, m = _scale_min_k4(raw[:, 4:16])
    qs = raw[:, 48:176].reshape(n, 4, 1, 32)
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(n, 8, 32)
    high = np.unpackbits(raw[:, None, 16:48], axis=1, bitorder="little")          # [N, 8, 32]
    q = (low | (high << 4)).astype(np.float32)
    return (d * sc)[:, :, None] * q - (dmin * m)[:, :, None]


def q6_k(raw):
    """Q6_K, 256 values in 210 bytes: ql[128] (low 4 bits) | qh[64] (high 2 bits) | scales int8[16]
    | d f16. Each 128-half: ql 64 bytes, qh 32 bytes; value (quarter k, l) takes the low or high
    nibble of ql[l + 32 (k & 1)] (high for k >= 2) and bits 2k of qh[l].   x = d * sc * (q - 32)"""
    n = len(raw)
    ql = raw[:, 0:128].reshape(n, 2, 2, 32)                                       # [N, half, 2, 32]
    qh = raw[:, 128:192].reshape(n, 2, 1, 32)
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2)                            # [N, half, 4, 32]
    high = (qh >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3       # [N, half, 4, 32]
    q = (low | (high << 4)).astype(np.float32) - 32
    sc = raw[:, 192:208].view(np.int8).astype(np.float32)                         # [N, 16], 16 values each
    d = _f16(raw[:, 208:210])
    return (d * sc)[:, :, None] * q.reshape(n, 16, 16)


@dataclass(frozen=True)
class QuantType:
    """A GGML type: its name, values per block, bytes per block, and dequantizer."""
    name: str
    block: int
    block_bytes: int
    dequantize: object


TYPES = {  # GGML type id -> QuantType (ids from ggml.h)
    0: QuantType("F32", 1, 4, f32), 1: QuantType("F16", 1, 2, f16), 30: QuantType("BF16", 1, 2, bf16),
    2: QuantType("Q4_0", 32, 18, q4_0), 3: QuantType("Q4_1", 32, 20, q4_1),
    6: QuantType("Q5_0", 32, 22, q5_0), 7: QuantType("Q5_1", 32, 24, q5_1), 8: QuantType("Q8_0", 32, 34, q8_0),
    10: QuantType("Q2_K", QK_K, 84, q2_k), 11: QuantType("Q3_K", QK_K, 110, q3_k), 12: QuantType("Q4_K", QK_K, 144, q4_k),
    13: QuantType("Q5_K", QK_K, 176, q5_k), 14: QuantType("Q6_K", QK_K, 210, q6_k),
    20: QuantType("IQ4_NL", 32, 18, iq4_nl),
}
# Types we know the block layout of (so a file using them is still read and checked) but do not
# dequantize: a tensor of one of these is refused by name when its weights are loaded.
KNOWN_UNSUPPORTED = {
    9: QuantType("Q8_1", 32, 40, None), 15: QuantType("Q8_K", QK_K, 292, None),
    16: QuantType("IQ2_XXS", QK_K, 66, None), 17: QuantType("IQ2_XS", QK_K, 74, None),
    18: QuantType("IQ3_XXS", QK_K, 98, None), 19: QuantType("IQ1_S", QK_K, 50, None),
    21: QuantType("IQ3_S", QK_K, 110, None), 22: QuantType("IQ2_S", QK_K, 82, None),
    23: QuantType("IQ4_XS", QK_K, 136, None), 24: QuantType("I8", 1, 1, None), 25: QuantType("I16", 1, 2, None),
    26: QuantType("I32", 1, 4, None), 27: QuantType("I64", 1, 8, None), 28: QuantType("F64", 1, 8, None),
    29: QuantType("IQ1_M", QK_K, 56, None), 34: QuantType("TQ1_0", QK_K, 54, None),
    35: QuantType("TQ2_0", QK_K, 66, None), 39: QuantType("MXFP4", 32, 17, None),
}
LAYOUTS = {**TYPES, **KNOWN_UNSUPPORTED}  # every type id the reader accepts


CHUNK_VALUES = 1 << 18  # dequantize this many values at a time: temporaries stay in cache


def dequantize(raw, type_id: int, shape, out: np.ndarray | None = None) -> np.ndarray:
    """Raw bytes of a tensor of GGML type `type_id` -> float32 array of `shape` (NumPy order),
    written into `out` when given; done in chunks so no full-size temporary is ever made."""
    qt = TYPES[type_id]
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, qt.block_bytes)
    out = np.empty(shape, np.float32) if out is None else out
    flat = out.reshape(-1, qt.block)
    step = max(1, CHUNK_VALUES // qt.block)
    for start in range(0, len(blocks), step):
        flat[start:start + step] = qt.dequantize(blocks[start:start + step]).reshape(-1, qt.block)
    return out
