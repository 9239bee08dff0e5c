#!/usr/bin/env python3
"""Fuzz every model-file reader with mutated files (testkit/fuzzing.py does the work).

  python scripts/fuzz.py --cases 10000 --seed 1 [--format gguf ...] [--keep DIR]

Prints, per format: cases run, clean loads, clean errors, anything else (must be 0), the slowest
case and the largest memory growth relative to the file size. Exit status 1 if anything else
happened; the offending files are kept (in --keep, default a temp folder that is then kept).
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bpe.cli import Parser  # noqa: E402


def main(argv=None) -> int:
    """Parse the options, run the cases, print the figures."""
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from testkit.fuzzing import FORMATS
    p.add_argument("--cases", type=int, default=1000, help="how many mutated files to try (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed tries the same files (default 1)")
    p.add_argument("--format", action="append", choices=FORMATS, metavar="NAME",
                   help="only this format (repeatable; default all): " + ", ".join(FORMATS))
    p.add_argument("--keep", help="folder for work files and findings (default: a new temp folder)")
    p.add_argument("--fixtures", default=os.environ.get("TINYLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"),
                   help="the shared fixtures folder (for tok512.model)")
    args = p.parse_args(argv)
    if args.cases < 1:
        p.error(f"--cases must be a positive integer, got {args.cases}")
    if not (Path(args.fixtures) / "tok512.model").is_file():
        p.error(f"--fixtures {args.fixtures}: no tok512.model there")
    from testkit.fuzzing import fuzz
    try:
        workdir = Path(args.keep or tempfile.mkdtemp(prefix="fuzz-"))
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        p.error(f"--keep {args.keep}: {e.strerror or e}")
    result = fuzz(args.cases, args.seed, workdir, Path(args.fixtures), args.format)
    print(f"{'format':<20} {'cases':>6} {'loads':>6} {'errors':>6} {'other':>6} {'slowest s':>10} "
          f"{'peak MB':>8} {'peak/file':>10}")
    for fmt, s in result["stats"].items():
        print(f"{fmt:<20} {s['cases']:>6} {s['load']:>6} {s['error']:>6} {s['other']:>6} "
              f"{s['slowest']:>10.2f} {s['memory_mb']:>8.1f} {s['memory_ratio']:>10.0f}")
    print("(peak: the reader's memory growth; a few MB of it is Python's own working memory, whatever the file)")
    if result["findings"]:
        print(f"{len(result['findings'])} findings kept in {workdir / 'findings'}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:   # | head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
