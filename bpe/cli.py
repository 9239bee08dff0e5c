"""Command line, mirroring spm_train / spm_encode / spm_decode:

  python -m bpe train  --input FILE... --vocab-size N --model-prefix PREFIX [--style sentencepiece|bytes]
  python -m bpe encode --model M [--output-format id|piece] [--bos] [--eos] [--special] [FILE...]
  python -m bpe decode --model M [--input-format id|piece] [FILE...]

encode/decode read stdin (or the files) and write one output line per input line. spm's
underscore spellings (--vocab_size, --model_prefix, --output_format, ...) work too.
Errors are one line on stderr and exit status 2.
"""
import argparse
import heapq
import os
import sys

import regex

from .bytes_trainer import GPT4_PATTERN, RegexWords, train_bytes
from .files import load_tokenizer, model_files, write_all
from .model_file import ModelFileError
from .patterns import NAMED
from .sentencepiece import decode_bytes
from .sentencepiece_trainer import TrainError, count_words, train_sentencepiece


SMALL_CORPUS = 100_000  # --verbose prints the pair table at every step below this many bytes
# token backgrounds, light, each with black text, so it reads on dark and light terminals alike
COLORS = ["\x1b[30;48;5;153m", "\x1b[30;48;5;223m", "\x1b[30;48;5;194m", "\x1b[30;48;5;225m"]
RESET = "\x1b[0m"


def show(symbol) -> str:
    """A merge symbol (str or bytes) as readable text."""
    if isinstance(symbol, bytes):
        symbol = symbol.decode("utf-8", errors="backslashreplace")
    return repr(symbol)


def render_tokens(tok, ids: list[int], *, color: bool, show_ids: bool = False) -> str:
    """Token boundaries made visible: alternating background colours, or "|" between tokens.

    Tokens that spell one character together (byte pieces, or byte-level tokens that end inside
    a UTF-8 character) are shown as that character; with show_ids each token shows its id.
    """
    groups, texts = token_groups(tok, ids)
    parts = [" ".join(map(str, g)) if show_ids else t.replace("\n", "\\n") for g, t in zip(groups, texts)]
    if not color:
        return "|".join(parts)
    return "".join(f"{COLORS[k % len(COLORS)]}{p}{RESET}" for k, p in enumerate(parts))


def token_groups(tok, ids: list[int]) -> tuple[list[list[int]], list[str]]:
    """Ids grouped so each group is whole characters, with each group's text."""
    groups: list[list[int]] = []
    texts: list[str] = []
    byte_ids = getattr(tok, "id_to_byte", None)
    if byte_ids is not None:  # SentencePiece: a run of <0xXX> pieces spells characters
        for i in ids:
            if i in byte_ids and groups and groups[-1][-1] in byte_ids:
                groups[-1].append(i)
            else:
                groups.append([i])
        texts = [tok.decode(g) if g[0] in byte_ids else tok.id_to_piece(g[0]).replace("\u2581", " ") for g in groups]
        return groups, texts
    from .trace import piece_bytes
    pending, data = [], b""
    for i in ids:  # byte-level: a token that ends inside a character joins the next one (ĠðŁ + İī = " 🎉")
        if tok.is_control(i) and not pending:
            groups.append([i])
            texts.append(tok.decode([i]))
            continue
        pending.append(i)
        data += piece_bytes(tok, i)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.reason == "unexpected end of data":   # a character still to be completed
                continue
            text = data.decode("utf-8", "replace")
        groups.append(pending)
        texts.append(text)
        pending, data = [], b""
    if pending:
        groups.append(pending)
        texts.append(data.decode("utf-8", "replace"))
    return groups, texts


class UsageError(Exception):
    """A problem with the command line or its input: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2 (all our CLIs use it)."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    @staticmethod
    def error_line(e: Exception) -> str:
        """A library error as the command line says it: an OptionError gets its parameter's flag in front."""
        option = getattr(e, "option", None)
        return f"--{option.replace('_', '-')} {e}" if option else str(e)

    def require(self, what: str, modules: list[str], extra: str) -> None:
        """Exit 2 with one line naming the extra to install when an optional package is missing."""
        import importlib.util
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            print(f"error: {what} needs {' and '.join(missing)}: pip install -e \".[{extra}]\"", file=sys.stderr)
            sys.exit(2)


def add_train_options(t: argparse.ArgumentParser, *, vocab_size: int | None = None,
                      model_prefix: str | None = None, input_required: bool = True) -> argparse.ArgumentParser:
    """The training options; with defaults for vocab_size / model_prefix they become optional."""
    t.add_argument("--input", nargs="+", required=input_required, metavar="FILE",
                   help="text files, one sentence per line" + ("" if input_required else
                                                              " (without it: the walkthrough on the seed sentence)"))
    t.add_argument("--vocab-size", "--vocab_size", type=int, required=vocab_size is None, default=vocab_size,
                   metavar="N", help="size of the vocabulary to learn" +
                   (f" (default {vocab_size})" if vocab_size else ""))
    t.add_argument("--model-prefix", "--model_prefix", required=model_prefix is None, default=model_prefix,
                   metavar="PREFIX", help="writes PREFIX.model and PREFIX.vocab" +
                   (f" (default {model_prefix})" if model_prefix else ""))
    t.add_argument("--style", choices=["sentencepiece", "bytes"], default="sentencepiece",
                   help="sentencepiece: Llama-style .model (default); bytes: GPT-style byte-level BPE")
    t.add_argument("--character-coverage", "--character_coverage", type=float,
                   help="sentencepiece: share of characters kept as pieces; the rest use byte fallback (default 0.9995)")
    t.add_argument("--remove-extra-whitespaces", "--remove_extra_whitespaces", action="store_true",
                   help="sentencepiece: squeeze runs of spaces (Llama keeps them)")
    t.add_argument("--pattern", help=f"bytes: the pre-split regex, or a name: {', '.join(NAMED)} (default cl100k, GPT-4's)")
    t.add_argument("--special-tokens", "--special_tokens", metavar="A,B", help="bytes: comma-separated special tokens")
    t.add_argument("--tokenizer-json", action="store_true",
                   help="bytes: also write PREFIX.tokenizer.json, which Hugging Face tokenizers loads")
    t.add_argument("--verbose", action="store_true", help="print each merge as it happens")
    t.add_argument("--progress", action="store_true", help="show progress bars (default: when stderr is a terminal)")
    return t


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for the three subcommands."""
    p = Parser(prog="python -m bpe", formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Train, encode and decode BPE tokenizers.

  python -m bpe train  --input corpus.txt --vocab-size 4096 --model-prefix tok [--style bytes --tokenizer-json]
  python -m bpe encode --model tok.model < text.txt                 # one line of ids per input line
  python -m bpe encode --model tokenizer.json --output-format piece --color < text.txt
  python -m bpe decode --model model.gguf < ids.txt

--model takes any of: a SentencePiece .model, a Hugging Face tokenizer.json (either family), a
tiktoken rank file (with --pattern gpt2|cl100k|o200k|llama3|qwen2), a GGUF file (its tokenizer),
or a bytes-style .model trained here; the kind is told from the content, never the name.""")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train_options(sub.add_parser("train", help="train a vocabulary (like spm_train)"))
    for name, fmt in [("encode", "output"), ("decode", "input")]:
        e = sub.add_parser(name, help=f"{name} lines (like spm_{name})")
        e.add_argument("--model", required=True, metavar="M",
                       help="SentencePiece .model, tokenizer.json, tiktoken rank file, GGUF, or our bytes .model")
        e.add_argument(f"--{fmt}-format", f"--{fmt}_format", choices=["id", "piece"], default="id", dest="format",
                       help=f"{fmt} ids (default) or the vocabulary's piece strings")
        e.add_argument("--pattern", choices=sorted(NAMED), metavar="NAME",
                       help=f"the regex of a tiktoken rank file: {', '.join(NAMED)}")
        e.add_argument("files", nargs="*", metavar="FILE", help="input files (default: stdin)")
        if name == "encode":
            e.add_argument("--bos", action="store_true", help="add the BOS id")
            e.add_argument("--eos", action="store_true", help="add the EOS id")
            e.add_argument("--special", action="store_true",
                           help="special-token text (<s>, <|im_start|>, ...) becomes those ids")
            e.add_argument("--color", action="store_true",
                           help="show token boundaries in alternating colours (\"|\" between tokens when not a terminal)")
            e.add_argument("--ids", action="store_true", help="with --color: show each token's id instead of its text")
    return p


def run_train(args) -> None:
    """Train and write PREFIX.model and PREFIX.vocab."""
    for path in args.input:
        if os.path.isdir(path):
            raise UsageError(f"--input {path} is a directory, not a text file")
        if not os.path.isfile(path):
            raise UsageError(f"input file {path} does not exist")
    if not os.path.basename(args.model_prefix):
        raise UsageError(f"--model-prefix {args.model_prefix} names a folder; give a file prefix such as "
                         f"{os.path.join(args.model_prefix, 'tok')}")
    folder = os.path.dirname(os.path.abspath(args.model_prefix))
    if not os.path.isdir(folder):
        raise UsageError(f"folder {folder} for --model-prefix does not exist")
    other = {"sentencepiece": [("pattern", args.pattern), ("special-tokens", args.special_tokens),
                               ("tokenizer-json", args.tokenizer_json or None)],
             "bytes": [("character-coverage", args.character_coverage),
                       ("remove-extra-whitespaces", args.remove_extra_whitespaces or None)]}[args.style]
    for name, value in other:
        if value is not None:
            raise UsageError(f"--{name} does not apply to --style {args.style}")
    args.character_coverage = 0.9995 if args.character_coverage is None else args.character_coverage
    args.pattern = NAMED.get(args.pattern, args.pattern) if args.pattern is not None else GPT4_PATTERN
    args.special_tokens = args.special_tokens or ""
    progress = args.progress or sys.stderr.isatty()
    on_merge = on_step = None
    if args.verbose:
        step = iter(range(1, 10**12))

        def on_merge(a, b, count):
            print(f"merge {next(step):>6}: {show(a)} + {show(b)} -> {show(a + b)}  (count {count})")
        if sum(os.path.getsize(p) for p in args.input) <= SMALL_CORPUS:
            def on_step(counts, symbols):  # the walkthrough's table, at every step
                print("\n  pair                  count")
                live = ((pair, c) for pair, c in counts.items() if c > 0)  # merged-away pairs keep a 0
                for (a, b), c in heapq.nlargest(5, live, key=lambda kv: kv[1]):
                    print(f"  {show(symbols[a]) + ' + ' + show(symbols[b]):<20}  {c:>5}")
    if args.style == "sentencepiece":
        if args.vocab_size < 3 + 256 + 1:
            raise UsageError(f"--vocab-size {args.vocab_size} is below the byte alphabet: "
                             "sentencepiece style needs at least 260 (3 special + 256 bytes + characters)")
        if not 0 < args.character_coverage <= 1:
            raise UsageError(f"--character-coverage {args.character_coverage} must be in (0, 1]")
        model = train_sentencepiece(args.input, args.vocab_size, character_coverage=args.character_coverage,
                                    remove_extra_whitespaces=args.remove_extra_whitespaces,
                                    progress=progress, on_merge=on_merge, on_step=on_step)
        model.trainer["model_prefix"] = args.model_prefix
    else:
        special = [s for s in args.special_tokens.split(",") if s]
        if args.vocab_size < 256 + len(special):
            raise UsageError(f"--vocab-size {args.vocab_size} is below the byte alphabet: "
                             f"bytes style needs at least {256 + len(special)} (256 bytes + special tokens)")
        try:
            regex.compile(args.pattern)
        except regex.error as e:
            raise UsageError(f"--pattern is not a valid regex: {e}") from None
        words = count_words(args.input, RegexWords(args.pattern), progress=progress)
        if not words:
            raise TrainError("the corpus is empty: no text to learn from")
        model = train_bytes(words, args.vocab_size, pattern=args.pattern, special_tokens=special,
                            on_merge=on_merge, on_step=on_step)
    size = len(model.pieces) if args.style == "sentencepiece" else model.vocab_size
    if size < args.vocab_size:
        print(f"note: the corpus supports only {size} pieces (no pair left to merge); wrote a vocabulary "
              f"of {size}, not --vocab-size {args.vocab_size}", file=sys.stderr)
    files = model_files(model, args.model_prefix)
    if args.tokenizer_json:
        files[args.model_prefix + ".tokenizer.json"] = model.to_tokenizer_json().encode("utf-8")
    try:
        write_all(files)                                  # all of them, or none
    except OSError as e:
        raise UsageError(f"cannot write {e.filename or args.model_prefix}: {e.strerror or e} (nothing was written)") from None
    paths = list(files)
    print(f"wrote {', '.join(paths)}", file=sys.stderr)


def read_lines(files):
    """Lines of the given files, or of stdin, split at "\n" only (a "\r" stays, as in spm_encode).

    Invalid UTF-8 is read as SentencePiece reads it: one U+FFFD per byte that starts no character.
    """
    def lines_of(stream):
        for raw in stream:
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                yield decode_bytes(raw)
    if not files:
        yield from lines_of(sys.stdin.buffer)
        return
    for path in files:
        try:
            with open(path, "rb") as f:
                yield from lines_of(f)
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}") from None


def run_encode(args) -> None:
    """Encode each input line to a line of ids or pieces."""
    if args.ids and not args.color:
        raise UsageError("--ids goes with --color")
    tok = load_tokenizer(args.model, pattern=args.pattern)
    for flag, missing in (("--bos", args.bos and tok.bos_id < 0), ("--eos", args.eos and tok.eos_id < 0)):
        if missing:
            print(f"note: {args.model} defines no token for {flag}; none is added", file=sys.stderr)
    for line in read_lines(args.files):
        ids = tok.encode(line, bos=args.bos, eos=args.eos, special=args.special)
        if args.color:
            sys.stdout.write(render_tokens(tok, ids, color=sys.stdout.isatty(), show_ids=args.ids) + "\n")
            continue
        out = ids if args.format == "id" else [tok.id_to_piece(i) for i in ids]
        sys.stdout.write(" ".join(map(str, out)) + "\n")


ID = regex.compile(r"[0-9]+")  # plain ASCII digits only: "٣", "1_000" and "+15" are not ids


def run_decode(args) -> None:
    """Decode each input line of ids or pieces to text."""
    tok = load_tokenizer(args.model, pattern=args.pattern)
    for n, line in enumerate(read_lines(args.files), 1):
        ids = []
        for token in line.split():
            if args.format == "piece":
                i = tok.piece_to_id(token)
                if i is None or (tok.id_to_piece(i) != token):
                    raise UsageError(f"line {n}: piece {token!r} is not in the vocabulary of {args.model}")
                ids.append(i)
            elif ID.fullmatch(token):
                ids.append(int(token))
            else:
                raise UsageError(f"line {n}: {token!r} is not an integer id")
        try:
            text = tok.decode(ids)
        except ValueError as e:
            raise UsageError(f"line {n}: {e}") from None
        sys.stdout.write(text + "\n")


def main(argv=None) -> int:
    """Entry point: run a subcommand; print one-line errors and return 2 on bad input."""
    args = build_parser().parse_args(argv)
    return run_reporting_errors({"train": run_train, "encode": run_encode, "decode": run_decode}[args.command], args)


def run_reporting_errors(command, args) -> int:
    """Run `command(args)`; bad input becomes one line on stderr and exit status 2."""
    try:
        command(args)
    except (UsageError, ModelFileError, TrainError, ValueError) as e:
        print(f"error: {Parser.error_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as e:  # a file that cannot be read or written (a full disk, ...)
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
