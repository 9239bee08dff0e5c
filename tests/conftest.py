"""Shared test helpers: where the real fixtures live (../shared/fixtures, or $TINYLLAMA_FIXTURES)."""
import pytest

from testkit.paths import FIXTURES, ROOT, cached_fixture, fixture_path, gemma3_gguf_path, needed, smollm2_gguf_path  # noqa: F401


def pytest_ignore_collect(collection_path, config):
    """The oracle's modules import torch at the top; a run that leaves the oracle out (README's test
    command on a fresh machine, without torch) does not collect them, so it reports no skip for them."""
    import importlib.util
    if not collection_path.name.startswith("test_oracle_") or "not oracle" not in (config.option.markexpr or ""):
        return None
    return True if importlib.util.find_spec("torch") is None else None


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


def smollm2_tokenizer_json():
    """SmolLM2's tokenizer.json as transformers converts it (scripts/make_fixtures.py), or skip / fail."""
    return cached_fixture("smollm2-tokenizer.json")


def gemma3_tokenizer_json():
    """Gemma 3 270M's tokenizer.json as transformers converts it (scripts/make_fixtures.py), or skip / fail."""
    return cached_fixture("gemma3-tokenizer.json")
