#!/usr/bin/env python3
"""Look inside a model in the browser, and serve OpenAI's API for the tools people use.

  python scripts/serve.py                                  # SmolLM2, http://127.0.0.1:8000/
  python scripts/serve.py --model runs/shakespeare --port 0   # a model you trained; any free port
  python scripts/serve.py --tokenizer ../shared/fixtures/llama2-tokenizer.model   # compare tokenizers
  python scripts/serve.py --hellaswag ../shared/fixtures/eval/hellaswag_val_full.txt  # the page scores its items
  python scripts/serve.py --report reports/smollm2/report.json      # the page shows evaluate.py's report card

The first line of stdout is the URL. The page needs nothing from outside (no CDN). /v1/models,
/v1/chat/completions and /v1/completions speak OpenAI's format (--api-key to require a key).
Binds 127.0.0.1 unless --host says otherwise. Ctrl-C stops it.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bpe.cli import Parser  # noqa: E402


def parse_args(argv):
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="any generate.py --model spec (default smollm2)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = a free one)")
    p.add_argument("--tokenizer", action="append", default=[], metavar="FILE",
                   help="another tokenizer file to compare on the page (repeatable)")
    p.add_argument("--hellaswag", metavar="FILE",
                   help="HellaSwag items (llama.cpp's six-line format) the page's evaluation panel steps through")
    p.add_argument("--report", metavar="FILE", help="a report card (evaluate.py --report's report.json) the page shows")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every /v1 route")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds a request body may take to arrive (default 10; slower clients get 408)")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be in 0..65535, got {args.port}")
    if not (0 < args.timeout <= 3600):
        p.error(f"--timeout must be in (0, 3600] seconds, got {args.timeout}")
    if args.api_key is not None and not args.api_key.strip():
        p.error("--api-key is empty")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print('error: the server needs its extra: pip install -e ".[serve]"', file=sys.stderr)
        return 2
    from bpe.files import load_tokenizer
    from model.formats.loader import load
    from model.web.server import create_app, serve
    try:
        loaded = load(args.model)
        tokenizers = [(Path(f).name, load_tokenizer(f)) for f in args.tokenizer]
        items = None
        if args.hellaswag is not None:
            from model.evaluation.datasets import read_hellaswag
            items = read_hellaswag(args.hellaswag)
        report = None
        if args.report is not None:
            from model.evaluation.report import read_card
            report = read_card(args.report)
    except (ValueError, OSError) as e:
        message = f"{e.filename or ''}: {e.strerror or e}" if isinstance(e, OSError) else Parser.error_line(e)
        if args.hellaswag is not None and getattr(e, "option", None) == "data":
            message = "--hellaswag " + str(e)
        elif getattr(e, "option", None) == "report":
            message = "--report " + str(e)
        print(f"error: {message}", file=sys.stderr)
        return 2
    folder = Path(args.model) if Path(args.model).is_dir() else None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"WARNING: listening on {args.host}: anyone who can reach this address can use the model "
              f"and read what it is asked" + ("" if args.api_key else " (no --api-key)"), file=sys.stderr)

    def ready(host, port):
        shown = f"[{host}]" if ":" in host else host
        print(f"http://{shown}:{port}/", flush=True)
        print(f"serving {loaded.source} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        serve(lambda hosts: create_app(loaded, tokenizers=tokenizers, folder=folder, api_key=args.api_key,
                                       hosts=hosts, body_seconds=args.timeout, eval_items=items,
                                       report=report,
                                       model_id=args.model if args.model in ("smollm2", "gemma3") else None),
              args.host, args.port, on_ready=ready)
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
