#!/usr/bin/env python3
"""Tokenizer benchmarks, as ratios against references measured in the same run.

  encode, Llama-2 vocab, tinyshakespeare line by line: our throughput / SentencePiece's (goal >= 0.5)
  encode, the whole file as one string:               our throughput / SentencePiece's (goal >= 1.0)
  train, sentencepiece style, vocab 4096:              our time / HF tokenizers' BpeTrainer time (goal <= 5)
  byte-level, SmolLM2's tokenizer.json, line by line:  our throughput / HF tokenizers' (goal >= 1, floor 0.3)
  byte-level, 1 MB of one letter / of digits:          our time / our time on 1 MB of English (goal <= 3)

Needs sentencepiece (and tokenizers for the training reference). Fixtures from ../shared/fixtures
or $TINYLLAMA_FIXTURES. Each timing is the best of --repeat runs.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers on one thread, as we are
sys.path.insert(0, str(ROOT))

from bpe.cli import Parser  # noqa: E402
from bpe.sentencepiece import SentencePieceTokenizer  # noqa: E402
from bpe.sentencepiece_trainer import train_sentencepiece  # noqa: E402


def best_time(fn, repeat: int) -> float:
    """Smallest wall time of `repeat` calls."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    """Run the three benchmarks and print their ratios."""
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixtures", default=os.environ.get("TINYLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"),
                   help="the shared fixtures folder (llama2-tokenizer.model, tinyshakespeare.txt)")
    p.add_argument("--repeat", type=int, default=5, help="runs of each timing; the best (or median) is kept (default 5)")
    args = p.parse_args()
    if args.repeat < 1:
        p.error(f"--repeat must be a positive integer, got {args.repeat}")
    fixtures = Path(args.fixtures)
    model, corpus = fixtures / "llama2-tokenizer.model", fixtures / "tinyshakespeare.txt"
    for f in (model, corpus):
        if not f.exists():
            print(f"error: fixture {f} is missing (use --fixtures)", file=sys.stderr)
            return 2
    try:
        import sentencepiece as spm
    except ImportError:
        print("error: the reference needs sentencepiece: pip install sentencepiece", file=sys.stderr)
        return 2

    text = corpus.read_text(encoding="utf-8")
    lines = text.splitlines()
    ref = spm.SentencePieceProcessor(model_file=str(model))
    mb = len(text.encode()) / 1e6

    def ours_lines():  # a fresh tokenizer each time: the word cache starts empty
        tok = SentencePieceTokenizer.load(model)
        t = time.perf_counter()
        for s in lines:
            tok.encode(s)
        return time.perf_counter() - t

    def ours_whole():
        tok = SentencePieceTokenizer.load(model)
        t = time.perf_counter()
        tok.encode(text)
        return time.perf_counter() - t

    ours_l = min(ours_lines() for _ in range(args.repeat))
    ref_l = best_time(lambda: [ref.encode(s) for s in lines], args.repeat)
    ours_w = min(ours_whole() for _ in range(args.repeat))
    ref_w = best_time(lambda: ref.encode(text), args.repeat)
    print(f"encode line by line : ours {mb / ours_l:6.2f} MB/s, sentencepiece {mb / ref_l:6.2f} MB/s, "
          f"ratio {ref_l / ours_l:.2f}x (goal >= 0.5, floor 0.2)")
    print(f"encode whole file   : ours {mb / ours_w:6.2f} MB/s, sentencepiece {mb / ref_w:6.2f} MB/s, "
          f"ratio {ref_w / ours_w:.2f}x (goal >= 1.0)")

    byte_level(lines, text, args.repeat)
    repeat = max(1, args.repeat // 2)
    ours_t = best_time(lambda: train_sentencepiece([corpus], 4096), repeat)
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        print(f"train vocab 4096    : ours {ours_t:.2f} s; reference skipped (pip install tokenizers)")
        return 0

    def hf_train():
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(),
                                                     pre_tokenizers.Digits(individual_digits=True)])
        trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=["<unk>", "<s>", "</s>"],
                                      max_token_length=16, show_progress=False)
        tok.train([str(corpus)], trainer)

    hf_t = best_time(hf_train, repeat)
    print(f"train vocab 4096    : ours {ours_t:.2f} s, HF tokenizers {hf_t:.2f} s, "
          f"ratio {ours_t / hf_t:.2f}x our time (goal <= 5)")
    return 0


def byte_level(lines: list[str], text: str, repeat: int) -> None:
    """SmolLM2's byte-level tokenizer against HF tokenizers, interleaved; and the linearity check."""
    from bpe.files import load_tokenizer
    from model.formats.smollm2 import cache_dir
    path = cache_dir() / "smollm2-tokenizer.json"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("byte-level          : skipped (pip install tokenizers)")
        return
    if not path.exists():
        print(f"byte-level          : skipped ({path} missing: run scripts/make_fixtures.py)")
        return
    hf = Tokenizer.from_file(str(path))
    ratios = []
    for _ in range(repeat):  # interleaved: ours, HF, ours, HF ... (a fresh tokenizer: empty cache)
        tok = load_tokenizer(path)
        t = time.perf_counter()
        for s in lines:
            tok.encode(s)
        ours = time.perf_counter() - t
        t = time.perf_counter()
        for s in lines:
            hf.encode(s, add_special_tokens=False)
        ratios.append((time.perf_counter() - t) / ours)
    ratios.sort()
    print(f"byte-level lines    : ratio {ratios[len(ratios) // 2]:.2f}x HF tokenizers' throughput "
          f"(median of {repeat}; goal >= 1, floor 0.3)")
    english = text.encode()[:1_000_000].decode("utf-8", "ignore")
    for name, sample in [("one letter", "a" * 1_000_000), ("digits", "1234567890" * 100_000)]:
        pair = []
        for _ in range(max(1, repeat // 2)):
            a, b = load_tokenizer(path), load_tokenizer(path)  # fresh caches for both
            pair.append(best_time(lambda: a.encode(sample), 1) / best_time(lambda: b.encode(english), 1))
        print(f"1 MB of {name:<11} : {min(pair):.2f}x the time of 1 MB of English (goal <= 3)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        sys.exit(main())
