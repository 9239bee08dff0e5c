#!/usr/bin/env python3
"""Friendly front of the BPE trainer.

  python scripts/train_bpe.py                     # the classic walkthrough: pair table, first merge, next merges
  python scripts/train_bpe.py --input FILE... [--vocab-size 4096] [--model-prefix tokenizer]
                              [--style sentencepiece|bytes] [--verbose]

Training is `python -m bpe train` with friendlier defaults; see bpe/cli.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bpe.cli import main  # noqa: E402
from bpe.walkthrough import render  # noqa: E402


def run(argv: list[str]) -> int:
    """Print the walkthrough with no arguments; otherwise train with friendly defaults."""
    if not argv:
        print(render())
        return 0
    if argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if "--vocab-size" not in argv:
        argv += ["--vocab-size", "4096"]
    if "--model-prefix" not in argv:
        argv += ["--model-prefix", "tokenizer"]
    return main(["train"] + argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
