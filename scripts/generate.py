#!/usr/bin/env python3
"""Generate text with TinyLlama (or any Llama-architecture HF checkpoint), streamed to stdout.

  python scripts/generate.py --prompt "Once upon a time"
  python scripts/generate.py --chat --prompt "What is a tokenizer?" [--system "You are ..."]
  python scripts/generate.py --chat                       # interactive chat on a terminal

stdout carries only the text; stderr gets llama.cpp-style stats at the end. Ctrl-C stops cleanly.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bpe.cli import Parser  # noqa: E402
from bpe.model_file import ModelFileError  # noqa: E402
from model.chat import encode_chat  # noqa: E402
from model.config import ConfigError  # noqa: E402
from model.generate import ContextError, Stats, check_prompt  # noqa: E402
from model.inspection import inspect_run  # noqa: E402
from model.hub import DEFAULT_REPO, ModelNotFound, load_folder_tokenizer, resolve_model  # noqa: E402
from model.llama import Llama  # noqa: E402
from model.sampling import check_sampling, sample  # noqa: E402
from model.session import Settings, write_flush, chat_loop, stream  # noqa: E402
from model.weights import WeightsError  # noqa: E402


def parse_args(argv):
    """Command-line options, named as llama.cpp / run.c users expect."""
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_REPO, help=f"HF-layout folder or Hub repo id (default {DEFAULT_REPO})")
    p.add_argument("--prompt", help="the prompt (default: read stdin, or chat interactively on a terminal)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in TinyLlama's chat format")
    p.add_argument("--system", help="system message for --chat")
    p.add_argument("--max-new-tokens", type=int, help="new tokens at most (default 256; 5 with --inspect)")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default 0.7, TinyLlama-Chat's card)")
    p.add_argument("--top-k", type=int, default=50, help="keep the k most likely tokens, 0 = off (default 50)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus probability, 1 = off (default 0.95)")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same text")
    p.add_argument("--inspect", action="store_true",
                   help="look inside: tokens, top next tokens per step, attention maps, hidden-state norms")
    p.add_argument("--show-top", type=int, default=5, help="--inspect: rows of each next-token table (default 5)")
    p.add_argument("--layer", type=int, help="--inspect: only this layer's attention map (0-based)")
    p.add_argument("--head", type=int, help="--inspect: only this head (0-based)")
    p.add_argument("--png-dir", help="--inspect: write attention maps as PNG files here instead of text")
    args = p.parse_args(argv)
    if args.system is not None and not args.chat:
        p.error("--system needs --chat")
    for name in ("layer", "head", "png_dir"):
        if getattr(args, name) is not None and not args.inspect:
            p.error(f"--{name.replace('_', '-')} needs --inspect")
    if args.show_top != 5 and not args.inspect:
        p.error("--show-top needs --inspect")
    if args.seed is not None and args.seed < 0:
        p.error(f"--seed must be a non-negative integer, got {args.seed}")
    if args.max_new_tokens is None:
        args.max_new_tokens = 5 if args.inspect else 256
    return args


def main(argv=None) -> int:
    """Load the model, then generate once (raw or chat) or chat interactively."""
    args = parse_args(argv)
    try:
        check_sampling(args.temperature, args.top_k, args.top_p)
        if args.max_new_tokens < 0:
            raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
        interactive = args.prompt is None and args.chat and sys.stdin.isatty()
        if args.prompt is not None:  # bytes that are not UTF-8 (argv keeps them as surrogates) become U+FFFD
            prompt = args.prompt.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        elif interactive:
            prompt = ""
        else:
            if sys.stdin.isatty():
                print("reading the prompt from stdin (end it with Ctrl-D; or pass --prompt, or --chat to chat)",
                      file=sys.stderr)
            prompt = sys.stdin.buffer.read().decode("utf-8", "replace")
        t = time.perf_counter()
        folder = resolve_model(args.model)
        tok = load_folder_tokenizer(folder)
        model = Llama.load(folder)
        stats = Stats(load_s=time.perf_counter() - t)
        rng = np.random.default_rng(args.seed)
        settings = Settings(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
        if args.inspect:
            return inspect(model, tok, prompt, args, rng)
        if interactive:
            return chat_loop(model, tok, lambda messages: encode_chat(tok, messages), settings, rng,
                             system=args.system, load_s=stats.load_s)
        if args.chat:
            ids = encode_chat(tok, chat_messages(args, prompt))
        else:
            ids = tok.encode(prompt, bos=True)
        check_prompt(model, ids)
        write = write_flush(sys.stdout)
        if not args.chat:
            write(prompt)  # raw mode echoes the prompt, as run.c does
        _, interrupted = stream(model, tok, ids, settings, rng, stats, write, continuation=not args.chat)
        if interrupted:
            print(file=sys.stderr)
        write("\n")
        print(stats.report(), file=sys.stderr)
        return 0
    except (ModelNotFound, ModelFileError, ConfigError, WeightsError, ContextError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def inspect(model, tok, prompt, args, rng) -> int:
    """--inspect: the tokens, next-token tables, attention maps and norms, on stdout."""
    if args.show_top < 1:
        raise ValueError(f"--show-top must be >= 1, got {args.show_top}")
    ids = encode_chat(tok, chat_messages(args, prompt)) if args.chat else tok.encode(prompt, bos=True)
    check_prompt(model, ids)

    def pick(logits):
        return sample(logits, rng, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    inspect_run(model, tok, ids, steps=args.max_new_tokens, show_top=args.show_top, pick=pick,
                layer=args.layer, head=args.head, png_dir=args.png_dir)
    return 0


def chat_messages(args, prompt: str) -> list[dict]:
    """The system message (if any) and the user's prompt."""
    return ([{"role": "system", "content": args.system}] if args.system else []) + [{"role": "user", "content": prompt}]


if __name__ == "__main__":
    sys.exit(main())
