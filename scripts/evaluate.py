#!/usr/bin/env python3
"""How good is a model: perplexity and multiple-choice benchmarks, scored as llama.cpp scores them.

  python scripts/evaluate.py --model smollm2 --task perplexity --data ../shared/fixtures/eval/wiki.test.raw --chunks 20
  python scripts/evaluate.py --model smollm2 --task hellaswag --data ../shared/fixtures/eval/hellaswag_val_full.txt --limit 200
  python scripts/evaluate.py --model smollm2 --task piqa --data ../shared/fixtures/eval/piqa-valid.jsonl --labels ../shared/fixtures/eval/piqa-valid-labels.lst
  python scripts/evaluate.py --model smollm2 --task choice --data my-questions.jsonl --out scored.jsonl
  python scripts/evaluate.py --model smollm2 --report                # all three, laptop-sized, and a report card
  python scripts/evaluate.py --model gemma3 --report --full --resume  # the whole sets; run again after Ctrl-C to go on

perplexity: llama.cpp's method (chunks of --ctx tokens, BOS in place of each chunk's first token when the
model adds one, the second half of each chunk scored); prints [1]12.34,[2]... and the final estimate.
hellaswag / piqa / choice: each choice as context + " " + choice, its tokens after the choices' shared
prefix scored in one pass; acc_norm (highest mean log-probability: llama.cpp's number) and acc (highest
sum: llm.c's second number), with 95% Wilson intervals. The code is model/evaluation/.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bpe.cli import Parser  # noqa: E402

FIXTURES = Path(os.environ.get("TINYLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"))
REPORT_LIMITS = {"perplexity": 40, "hellaswag": 500, "piqa": 500}   # --report on a laptop: about 15 minutes
SAVE_SECONDS = 30       # a long multiple-choice run rewrites --out this often


def parse_args(argv):
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="any --model spec of generate.py: a GGUF, smollm2, gemma3, a folder")
    p.add_argument("--task", choices=["perplexity", "hellaswag", "piqa", "choice"])
    p.add_argument("--data", help="the task's data file")
    p.add_argument("--labels", help="--task piqa: the labels file (0 or 1 per line)")
    p.add_argument("--ctx", type=int, default=512, help="perplexity: tokens per chunk (default 512)")
    p.add_argument("--chunks", type=int, help="perplexity: score only the first N chunks")
    p.add_argument("--limit", type=int, help="multiple choice: score only the first N items")
    p.add_argument("--out", help="multiple choice: one JSON line per item (item, label, pred, pred_norm, "
                                 "logprob_sum, logprob_mean)")
    p.add_argument("--resume", action="store_true", help="multiple choice: go on after the items already in --out "
                                                         "(with --report: the report folder's hellaswag.jsonl and "
                                                         "piqa.jsonl); perplexity starts again")
    p.add_argument("--report", action="store_true", help="perplexity, HellaSwag and PIQA with laptop-sized limits "
                                                         f"({REPORT_LIMITS}; --chunks and --limit change them), "
                                                         "and a report card")
    p.add_argument("--full", action="store_true", help="--report on the whole sets (hours on a laptop)")
    p.add_argument("--report-dir", default="report", help="where --report writes report.md and report.json")
    p.add_argument("--data-dir", default=str(FIXTURES / "eval"), help="--report: the folder of the eval files")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    args = p.parse_args(argv)
    if args.report == bool(args.task):
        p.error("give --task (with --data) or --report")
    if args.task and not args.data:
        p.error(f"--task {args.task} needs --data FILE")
    if args.resume and not (args.report or args.out):
        p.error("--resume goes on from --out FILE (or the report folder with --report): give one")
    if args.task == "piqa" and not args.labels:
        p.error("--task piqa needs --labels FILE")
    for name in ("chunks", "limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    return p, args


class Progress:
    """One line on stderr, rewritten: done / total, the running score, the rate and an ETA."""

    def __init__(self, total: int, unit: str, quiet: bool):
        self.total, self.unit, self.quiet, self.start = total, unit, quiet or not sys.stderr.isatty(), time.time()

    def show(self, done: int, score: str) -> None:
        if self.quiet:
            return
        spent = time.time() - self.start
        eta = spent / done * (self.total - done) if done else 0
        print(f"\r[{done}/{self.total}] {score}  {done / spent if spent else 0:.2f} {self.unit}/s  "
              f"ETA {int(eta // 60)}:{int(eta % 60):02d}   ", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        if not self.quiet:
            print(file=sys.stderr)


def run_perplexity(loaded, text: str, args, chunks) -> dict:
    """The perplexity task; prints llama.cpp's running values and final line."""
    from model.evaluation.perplexity import perplexity
    total = len(loaded.tokenizer.encode(text, bos=loaded.tokenizer.add_bos)) // args.ctx
    bar = Progress(min(total, chunks or total), "chunks", args.quiet)
    state = {}

    def on_chunk(run):
        state["run"] = run
        print(f"[{len(run.running)}]{run.running[-1]:.4f},", end="", flush=True)
        bar.show(len(run.running), f"PPL {run.running[-1]:.4f}")
    try:
        run = perplexity(loaded.model, loaded.tokenizer, text, ctx=args.ctx, chunks=chunks, on_chunk=on_chunk)
    except KeyboardInterrupt:
        bar.end()
        run = state.get("run")
        if run is not None:
            ppl, err = run.estimate()
            print(f"\nInterrupted after {len(run.running)} chunks: PPL = {ppl:.4f} +/- {err:.5f}")
        raise
    bar.end()
    ppl, err = run.estimate()
    print(f"\nFinal estimate: PPL = {ppl:.4f} +/- {err:.5f}")
    return {"ppl": ppl, "stderr": err, "chunks": len(run.running), "ctx": args.ctx, "tokens_scored": run.count}


def run_choices(loaded, task: str, items, args, limit, out_path) -> dict:
    """A multiple-choice task; prints acc_norm and acc with their intervals. With --resume, the items an
    earlier run wrote to out_path count and are not scored again; out_path is rewritten (whole, atomically)
    every SAVE_SECONDS, so a run that is stopped or killed loses at most that much."""
    from files.atomic import atomic_file
    from model.evaluation.choices import Tally, as_line, read_scored, score_items
    n = min(len(items), limit or len(items))
    model = Path(loaded.source).name
    earlier = read_scored(out_path, items, model) if args.resume and out_path and Path(out_path).is_file() else []
    done = earlier[:n]                        # an earlier run's items past --limit stay in the file, uncounted
    tally, lines = Tally(), [json.dumps(as_line(s, model)) for s in earlier]
    for s in done:
        tally.add(s)
    bar, saved = Progress(n - len(done), "items", args.quiet), time.time()

    def save():
        if out_path and len(lines) > len(earlier):
            with atomic_file(out_path) as f:
                f.write(("\n".join(lines) + "\n").encode())

    def summary_line(prefix=""):
        s = tally.summary()
        return (f"{prefix}{task}: {s['items']} items, acc_norm {100 * s['acc_norm']:.2f}% "
                f"[{100 * s['acc_norm_interval'][0]:.2f}, {100 * s['acc_norm_interval'][1]:.2f}] "
                f"(highest mean log-probability, llama.cpp's), acc {100 * s['acc']:.2f}% "
                f"[{100 * s['acc_interval'][0]:.2f}, {100 * s['acc_interval'][1]:.2f}] (highest sum, llm.c's); "
                f"95% Wilson intervals")
    if done:
        print(f"{task}: going on after the {len(done)} items in {out_path}", file=sys.stderr)
    try:
        for scored in score_items(loaded.model, loaded.tokenizer, items, limit=n, start=len(done)):
            tally.add(scored)
            lines.append(json.dumps(as_line(scored, model)))
            s = tally.summary()
            bar.show(tally.items - len(done), f"acc_norm {100 * s['acc_norm']:.2f}%  acc {100 * s['acc']:.2f}%")
            if time.time() - saved > SAVE_SECONDS:
                save()
                saved = time.time()
    except KeyboardInterrupt:
        bar.end()
        print(summary_line("interrupted: "))
        raise
    finally:
        save()
    bar.end()
    print(summary_line())
    return {**tally.summary(), "resumed": len(done)}


def read_text(path) -> str:
    """The perplexity text: UTF-8, as the file holds it (CRLF kept)."""
    from model.evaluation.datasets import read_lines
    lines = read_lines(path)
    text = Path(path).read_bytes().decode("utf-8")
    if not lines or not text.strip():
        from model.evaluation.datasets import DataError
        raise DataError("data", f"{path}: the text is empty")
    return text


def run_task(loaded, task, data, labels, args, limit=None, chunks=None, out=None) -> dict:
    from model.evaluation.datasets import read_choices, read_hellaswag, read_piqa
    if task == "perplexity":
        return run_perplexity(loaded, read_text(data), args, chunks)
    items = (read_hellaswag(data) if task == "hellaswag" else read_piqa(data, labels) if task == "piqa"
             else read_choices(data))
    return run_choices(loaded, task, items, args, limit, out)


def main(argv=None) -> int:
    p, args = parse_args(argv)
    from model.formats.loader import load
    began = time.time()
    try:
        if args.out:
            out = Path(args.out)
            if out.is_dir() or not out.absolute().parent.is_dir():
                raise ValueError(f"--out {args.out}: not a file in an existing folder")
        loaded = load(args.model)
        if args.task:
            run_task(loaded, args.task, args.data, args.labels, args, args.limit, args.chunks, args.out)
            return 0
        from model.evaluation.report import card, write_card
        Path(args.report_dir).mkdir(parents=True, exist_ok=True)
        d = Path(args.data_dir)
        limits = {k: None for k in REPORT_LIMITS} if args.full else dict(REPORT_LIMITS)
        limits.update({k: v for k, v in (("perplexity", args.chunks), ("hellaswag", args.limit),
                                         ("piqa", args.limit)) if v is not None})   # given: they win
        results = {}
        for task, data, labels in [("perplexity", d / "wiki.test.raw", None),
                                   ("hellaswag", d / "hellaswag_val_full.txt", None),
                                   ("piqa", d / "piqa-valid.jsonl", d / "piqa-valid-labels.lst")]:
            print(f"== {task}", file=sys.stderr)
            started = time.time()
            results[task] = run_task(loaded, task, data, labels, args, limit=limits[task],
                                     chunks=limits["perplexity"] if task == "perplexity" else None,
                                     out=None if task == "perplexity" else Path(args.report_dir) / f"{task}.jsonl")
            results[task]["seconds"] = round(time.time() - started, 1)
        md, js = write_card(card(loaded.source, results, time.time() - began), args.report_dir)
        print(f"report card: {md} and {js}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError) as e:
        message = f"{e.filename or ''}: {e.strerror or e}" if isinstance(e, OSError) else Parser.error_line(e)
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
