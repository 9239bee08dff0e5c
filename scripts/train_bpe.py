#!/usr/bin/env python3
"""Friendly front of the BPE trainer.

  python scripts/train_bpe.py                     # the classic walkthrough: pair table, first merge, next merges
  python scripts/train_bpe.py --input FILE... [--vocab-size 4096] [--model-prefix tokenizer]
                              [--style sentencepiece|bytes] [--verbose]

The same options as `python -m bpe train` (bpe/cli.py), with defaults for the vocabulary size
and the output prefix.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bpe.cli import Parser, add_train_options, run_reporting_errors, run_train  # noqa: E402
from bpe.walkthrough import render  # noqa: E402


def run(argv: list[str]) -> int:
    """Print the walkthrough with no arguments; otherwise train with friendly defaults."""
    if not argv:
        print(render())
        return 0
    parser = Parser(prog="scripts/train_bpe.py", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    args = add_train_options(parser, vocab_size=4096, model_prefix="tokenizer").parse_args(argv)
    return run_reporting_errors(run_train, args)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
