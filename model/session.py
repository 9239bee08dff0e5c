"""What a user sees while the model writes: streamed text, and the interactive chat loop.

`stream` prints text as soon as it is final (never half a UTF-8 character) and, when Ctrl-C
stops it, keeps what was printed. `chat_loop` is a conversation on a terminal: the KV cache
keeps the shared prefix between turns, the oldest turns are dropped (never the system prompt)
when the context fills, and Ctrl-C stops an answer, not the session.
"""
import sys
from dataclasses import dataclass

from .generate import Stats, generate


@dataclass(frozen=True)
class GenerationSettings:
    """How to generate: the length limit and the sampling values."""
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 0.95
    drafter: object = None        # speculative decoding (model/speculate.py), or None
    draft_tokens: int = 8


def reading_progress(err):
    """On a terminal, a line redrawn while a long prompt is read ("reading: 1,024 / 6,900 tokens, 0:42 left"),
    wiped when the answer starts; None elsewhere (nothing to draw)."""
    import time
    if not (hasattr(err, "isatty") and err.isatty()):
        return None
    began = time.perf_counter()

    def reading(done: int, total: int) -> None:
        spent = time.perf_counter() - began
        left = int(spent / done * (total - done))
        err.write(f"\r\033[K(reading: {done:,} / {total:,} tokens, {left // 60}:{left % 60:02d} left)"
                  if done < total else "\r\033[K")
        err.flush()
    return reading


def stop_ids(model, tok) -> set[int]:
    """Ids that end generation: the tokenizer's end ids (EOS, end of turn) and the config's EOS."""
    ids = set(tok.stop_ids) | {tok.eos_id}
    eos = model.cfg.eos_token_id
    ids |= set(eos) if isinstance(eos, (list, tuple)) else {eos}
    return {i for i in ids if i is not None and i >= 0}


def stream(model, tok, prompt_ids: list[int], settings: GenerationSettings, rng, stats: Stats, write, *,
           reuse: int = 0, continuation: bool = False, reading=None) -> tuple[list[int], bool]:
    """Generate after `prompt_ids`, writing text as it becomes final; return (new ids, interrupted).

    Ctrl-C ends generation early: the ids chosen so far are returned with interrupted=True.
    With `continuation`, the text continues the prompt's (so the first piece keeps its space).
    Control tokens (BOS, EOS, end of turn, <|im_start|>) print nothing. `reading(done, total)` hears
    the progress of reading a long prompt (`reading_progress` draws it).
    """
    decoder, out, stops = tok.stream_decoder(), [], stop_ids(model, tok)
    if continuation:
        for i in prompt_ids:
            decoder.feed(i)
    interrupted = False
    try:
        for token in generate(model, prompt_ids, max_new_tokens=settings.max_new_tokens, rng=rng,
                              temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
                              stop_ids=stops, stats=stats, reuse=reuse,
                              limit=min(model.cfg.vocab_size, tok.vocab_size),
                              drafter=settings.drafter, draft_tokens=settings.draft_tokens, slide=continuation,
                              reading=reading):
            out.append(token)
            if token not in stops and not tok.is_control(token):
                write(decoder.feed(token))
    except KeyboardInterrupt:
        interrupted = True
    write(decoder.flush())
    return out, interrupted


def fit_conversation(encode, messages: list[dict], context: int, reserve: int) -> tuple[list[int], int]:
    """Ids of the conversation, dropping the oldest turns until `reserve` new tokens fit.

    The system message stays; turns go oldest first. Returns (ids, number of messages dropped);
    raises ValueError when even the last message alone does not fit.
    """
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(head):]
    dropped = 0
    while True:
        ids = encode(head + turns)
        if len(ids) + reserve <= context:
            return ids, dropped
        if len(turns) <= 1:
            raise ValueError(f"this message takes {len(ids)} tokens; the context holds {context} "
                             f"with {reserve} left for the answer")
        turns = turns[1:]
        dropped += 1
        while turns and turns[0]["role"] != "user":  # a conversation restarts with a user turn
            turns = turns[1:]
            dropped += 1


class NoEcho:
    """While the model answers, keys typed on the terminal are not echoed into the answer, and are
    dropped afterwards, since they were never seen (`dropped` then says so); a no-op when stdin is not a
    terminal."""

    def __init__(self, stream=None):
        self.fd, self.saved, self.dropped = None, None, False
        stream = stream or sys.stdin
        try:
            import termios
            if stream.isatty():
                self.fd, self.termios = stream.fileno(), termios
        except (ImportError, ValueError, OSError):
            pass

    def __enter__(self):
        if self.fd is not None:
            t = self.termios
            self.saved = t.tcgetattr(self.fd)
            quiet = list(self.saved)
            quiet[3] &= ~t.ECHO
            t.tcsetattr(self.fd, t.TCSANOW, quiet)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import select
            self.dropped = bool(select.select([self.fd], [], [], 0)[0])     # typed while the answer ran
            self.termios.tcflush(self.fd, self.termios.TCIFLUSH)
            self.termios.tcsetattr(self.fd, self.termios.TCSANOW, self.saved)
        return False


COMMANDS = {"/help": "these commands", "/reset": "forget the conversation (the system prompt stays)",
            "/exit": "end the chat (as Ctrl-D)", "/quit": "the same"}


def chat_loop(model, tok, encode, settings: GenerationSettings, rng, *, system: str | None = None,
              load_s: float | None = None, read=input, write=None, err=None, quiet: bool = False) -> int:
    """A multi-turn chat: read a line, answer it, repeat until Ctrl-D (or end of input).

    With `quiet`, no stats after each answer."""
    write = write or write_flush(sys.stdout)
    err = err or sys.stderr
    try:
        import readline  # line editing and history for input(), where available
    except ImportError:
        readline = None
    context = model.cfg.max_position_embeddings
    reserve = max(1, min(settings.max_new_tokens, context // 4))
    messages = [{"role": "system", "content": system}] if system else []
    cached: list[int] = []
    print("Chat with the model. /help lists the commands; Ctrl-D ends; Ctrl-C stops an answer.", file=err)
    while True:
        try:
            line = read("> ")
        except EOFError:
            print(file=err)
            return 0
        except KeyboardInterrupt:  # at the prompt: a fresh prompt, as a shell does
            print(file=err)
            continue
        if not line.strip():
            if readline is not None and read is input and readline.get_current_history_length():
                readline.remove_history_item(readline.get_current_history_length() - 1)   # no blank lines in history
            continue
        command = line.strip().lower()
        if command in COMMANDS:
            if command in ("/exit", "/quit"):
                return 0
            if command == "/reset":
                messages, cached = messages[:1] if system else [], []
                print("(a new conversation)", file=err)
            else:
                print("\n".join(f"  {c:<7} {what}" for c, what in COMMANDS.items()), file=err)
            continue
        try:
            ids, dropped = fit_conversation(encode, messages + [{"role": "user", "content": line}], context, reserve)
        except ValueError as e:
            print(f"note: {e}; try a shorter message", file=err)
            continue
        if dropped:
            print(f"note: the conversation outgrew the context of {context} tokens; "
                  f"dropped the {dropped} oldest messages", file=err)
            head = 1 if messages and messages[0]["role"] == "system" else 0
            messages = messages[:head] + messages[head + dropped:]
        messages.append({"role": "user", "content": line})
        reuse = 0
        while reuse < min(len(cached), len(ids) - 1) and cached[reuse] == ids[reuse]:
            reuse += 1
        stats = Stats(load_s=load_s)
        load_s = None  # the load happened once, before the first turn
        with NoEcho() as keys:
            new, interrupted = stream(model, tok, ids, settings, rng, stats, write, reuse=reuse,
                                      reading=reading_progress(err))
        write("\n")
        if keys.dropped:
            print("(keys typed during the answer were dropped: type at the \"> \" prompt)", file=err)
        stops = stop_ids(model, tok)
        answer = tok.decode([t for t in new if t not in stops and not tok.is_control(t)])
        messages.append({"role": "assistant", "content": answer.strip()})
        cached = ids + new  # generate() keeps only what the cache really holds of it
        if interrupted:
            print("(stopped)", file=err)
        elif len(new) >= settings.max_new_tokens and not (new and new[-1] in stops):
            print(f"(cut: the answer reached the {settings.max_new_tokens}-token limit)", file=err)
        if not quiet:
            print(stats.report(), file=err)


def write_flush(stream_):
    """A write function that flushes after each piece of text (streamed output)."""
    def write(text: str) -> None:
        stream_.write(text)
        stream_.flush()
    return write
