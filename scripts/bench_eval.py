#!/usr/bin/env python3
"""Evaluation speed beside llama.cpp: perplexity of WikiText-2 (--ctx 512) as whole processes, ours and
llama.cpp's `llama-perplexity -t 2` on the same GGUF, interleaved; the ratio, both estimates, peak memory.

  python scripts/bench_eval.py --llama-perplexity PATH/llama-perplexity [--model smollm2] [--chunks 40] [--pairs 2]

llama-perplexity builds from the llama.cpp that the llama-cpp-python sdist vendors (cmake, about ten
minutes here; never committed). Without --chunks both score the whole file.
"""
import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bpe.cli import Parser  # noqa: E402


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in KB, output) of a whole process."""
    t = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "peak_kb=%M", *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"error: {cmd[0]} failed: {out.stderr.strip()[-300:]}")
    peak = int(re.search(r"peak_kb=(\d+)", out.stderr).group(1))
    return seconds, peak, out.stdout + out.stderr


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llama-perplexity", required=True, metavar="PATH", help="llama.cpp's llama-perplexity binary")
    p.add_argument("--model", default="smollm2", help="smollm2, gemma3 or a GGUF file (default smollm2)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "fixtures" / "eval" / "wiki.test.raw"))
    p.add_argument("--chunks", type=int, help="score only the first N chunks (both sides)")
    p.add_argument("--pairs", type=int, default=2, help="interleaved pairs (default 2)")
    args = p.parse_args(argv)
    if not Path(args.llama_perplexity).is_file():
        p.error(f"--llama-perplexity {args.llama_perplexity}: no such file")
    if args.pairs < 1 or (args.chunks is not None and args.chunks < 1):
        p.error("--pairs and --chunks must be positive integers")
    from model.formats.loader import load
    gguf = load(args.model).source
    limit = ["--chunks", str(args.chunks)] if args.chunks else []
    ours_cmd = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--model", gguf, "--task", "perplexity",
                "--data", args.data, "--quiet", *limit]
    theirs_cmd = [args.llama_perplexity, "-m", gguf, "-f", args.data, "-c", "512", "-t", "2", *limit]
    ours, theirs = [], []
    for _ in range(args.pairs):
        ours.append(timed(ours_cmd))
        theirs.append(timed(theirs_cmd))
    estimate = lambda text: re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", text).groups()  # noqa: E731
    best_ours, best_theirs = min(s for s, _, _ in ours), min(s for s, _, _ in theirs)
    (po, eo), (pt, et) = estimate(ours[0][2]), estimate(theirs[0][2])
    print(f"model     : {gguf}, {'all' if not args.chunks else args.chunks} chunks of 512")
    print(f"ours      : {best_ours:.1f} s (best of {args.pairs}), peak {max(m for _, m, _ in ours) / 1e6:.2f} GB, "
          f"PPL = {po} +/- {eo}")
    print(f"llama.cpp : {best_theirs:.1f} s (best of {args.pairs}), peak {max(m for _, m, _ in theirs) / 1e6:.2f} GB, "
          f"PPL = {pt} +/- {et}")
    print(f"speed     : {best_theirs / best_ours:.2f}x llama.cpp (goal >= 1.0, 1.5); PPL differs by "
          f"{100 * abs(float(po) - float(pt)) / float(pt):.2f}% (llama.cpp multiplies in quantized form)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
