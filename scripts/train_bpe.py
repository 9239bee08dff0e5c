#!/usr/bin/env python3
"""Friendly front of the BPE trainer.

  python scripts/train_bpe.py                     # the classic walkthrough: pair table, first merge, next merges
  python scripts/train_bpe.py --verbose           # the walkthrough with more merges
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
    """Print the walkthrough without --input (every merge with --verbose); otherwise train with friendly defaults."""
    parser = Parser(prog="scripts/train_bpe.py", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    args = add_train_options(parser, vocab_size=4096, model_prefix="tokenizer", input_required=False).parse_args(argv)
    if args.input is None:
        given = [a for a in argv if a.startswith("--") and a.split("=")[0] not in ("--verbose",)]
        if given:
            parser.error(f"{given[0].split('=')[0]} needs --input (without it, train_bpe.py runs the walkthrough)")
        print(render(steps=40 if args.verbose else 10))
        return 0
    return run_reporting_errors(run_train, args)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
