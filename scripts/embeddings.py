#!/usr/bin/env python3
"""Explore the embedding table: nearest tokens by cosine similarity, and vector arithmetic.

  python scripts/embeddings.py --token Paris                     # neighbours of ▁Paris
  python scripts/embeddings.py --expr "Paris - France + Italy"   # analogy by vector arithmetic
  [--model PATH_OR_REPO] [--top 10]

A word is looked up as a word-start token ("Paris" -> "▁Paris", or "ĠParis" in byte-level
vocabularies), else as the exact token ("ing").
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bpe.cli import Parser  # noqa: E402
from bpe.model_file import ModelFileError  # noqa: E402
from model.formats.hub import DEFAULT_REPO  # noqa: E402
from model.inspect_report import cosine_neighbours, parse_arithmetic, piece_label, resolve_token  # noqa: E402
from model.formats.loader import load  # noqa: E402


def main(argv=None) -> int:
    """Print the nearest tokens to a token or to a sum of token vectors."""
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_REPO,
                   help=f"GGUF file, ollama:NAME, smollm2, HF-layout folder or Hub repo id (default {DEFAULT_REPO})")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--token", help="a token: its nearest neighbours")
    what.add_argument("--expr", help='token arithmetic, e.g. "Paris - France + Italy"')
    p.add_argument("--top", type=int, default=10, help="how many neighbours to show (default 10)")
    args = p.parse_args(argv)
    try:
        if args.top < 1:
            raise ValueError(f"--top must be >= 1, got {args.top}")
        loaded = load(args.model)
        tok = loaded.tokenizer
        terms = [(1, args.token)] if args.token is not None else parse_arithmetic(args.expr)
        ids = [(sign, resolve_token(tok, word)) for sign, word in terms]
        table = loaded.model.embed_tokens[:loaded.sample_limit]           # [V, D]
        query = np.sum([sign * table[i] for sign, i in ids], axis=0)       # [D]
        shown = " ".join(f"{'+' if s > 0 else '-'} {piece_label(tok, i)}" for s, i in ids).lstrip("+ ")
        print(f"nearest to {shown} (cosine similarity):")
        for i, sim in cosine_neighbours(table, query, args.top, exclude=[i for _, i in ids]):
            print(f"  {sim:7.4f}  {i:>6}  {piece_label(tok, i)}")
        return 0
    except (ModelFileError, ValueError) as e:
        print(f"error: {Parser.error_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
