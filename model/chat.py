"""Chat templates: each model's own conversation format, rendered as transformers renders it.

A chat model was trained on conversations laid out one exact way. The layout ships with the
model as a Jinja template: `tokenizer.chat_template` in a GGUF, `chat_template` in
tokenizer_config.json or `chat_template.jinja` in a folder. SmolLM2 (ChatML) renders

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n

The rendered text is tokenized with special-token text as ids (`<|im_start|>` is one token, never
the characters), and BOS goes in front only when the tokenizer's settings ask for it and the
template did not already write it. Models without a template get TinyLlama-Chat's (Zephyr's):

    <|system|>\\n{system}</s>\\n<|user|>\\n{prompt}</s>\\n<|assistant|>\\n

Templates are data from a file, so they run in jinja2's immutable sandbox with limits on template
size, output size and time; a template that reaches for Python internals fails with ChatTemplateError.
"""
import json
import re
import time
from datetime import datetime

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bpe.interface import Tokenizer

# the chat_template of TinyLlama-1.1B-Chat-v1.0's tokenizer_config.json
TINYLLAMA_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] "
    "+ eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}"
    "\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
MAX_TEMPLATE_CHARS = 256 << 10
MAX_OUTPUT_CHARS = 4 << 20
MAX_SECONDS = 5.0
MAX_REPEAT = 1 << 20  # the longest string or list a template may build with * or **


class ChatTemplateError(ValueError):
    """A chat template that is malformed, unsafe, or too large or slow to render."""


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` checked so a template cannot build huge values."""
    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        """Refuse `*` and `**` whose result would be huge; otherwise the sandbox's own operator."""
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise jinja2.sandbox.SecurityError("exponent too large")
        if operator == "*" and isinstance(right, int) and isinstance(left, (str, list, tuple)) and \
                len(left) * right > MAX_REPEAT:
            raise jinja2.sandbox.SecurityError("repetition too large")
        if operator == "*" and isinstance(left, int) and isinstance(right, (str, list, tuple)) and \
                len(right) * left > MAX_REPEAT:
            raise jinja2.sandbox.SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


def _raise(message):
    raise ChatTemplateError(f"the chat template refused the conversation: {message}")


class ChatFormat:
    """A compiled chat template plus the token strings it refers to (bos_token, eos_token, ...)."""

    def __init__(self, template: str, *, tokens: dict[str, str], source: str = "chat template"):
        if not isinstance(template, str):
            raise ChatTemplateError(f"{source}: the chat template is not a string")
        if len(template) > MAX_TEMPLATE_CHARS:
            raise ChatTemplateError(f"{source}: the chat template is larger than {MAX_TEMPLATE_CHARS} characters")
        self.source, self.tokens, self.text = source, dict(tokens), template
        env = _Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt))
        env.filters["tojson"] = _tojson  # as transformers defines it: plain JSON, non-ASCII kept
        try:
            self.template = env.from_string(template)
        except (jinja2.TemplateError, RecursionError, MemoryError) as e:
            raise ChatTemplateError(f"{source}: the chat template does not parse ({_first_line(e)})") from None

    def render(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        """The conversation as text, exactly as the template lays it out."""
        context = dict(self.tokens, messages=messages, add_generation_prompt=add_generation_prompt, tools=None)
        out, size, start = [], 0, time.monotonic()
        try:
            for chunk in self.template.generate(**context):
                out.append(chunk)
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise ChatTemplateError(f"{self.source}: the chat template wrote more than {MAX_OUTPUT_CHARS} characters")
                if time.monotonic() - start > MAX_SECONDS:
                    raise ChatTemplateError(f"{self.source}: the chat template took longer than {MAX_SECONDS} s")
        except ChatTemplateError as e:
            raise ChatTemplateError(str(e) if str(e).startswith(self.source) else f"{self.source}: {e}") from None
        except (jinja2.TemplateError, RecursionError, MemoryError, ArithmeticError, TypeError, ValueError,
                AttributeError, KeyError, IndexError, OverflowError) as e:
            raise ChatTemplateError(f"{self.source}: the chat template failed ({type(e).__name__}: "
                                    f"{_first_line(e)})") from None
        return "".join(out)

    def encode(self, tokenizer: Tokenizer, messages: list[dict], *, add_generation_prompt: bool = True) -> list[int]:
        """Token ids of a conversation: the template's markers as special ids, each message's content as
        plain text (so `<|im_start|>system` typed in a message cannot forge a turn), BOS as configured."""
        rendered = self.render(messages, add_generation_prompt=add_generation_prompt)
        return self.tokenize(tokenizer, rendered, self.content_spans(messages, rendered, add_generation_prompt))

    def content_spans(self, messages: list[dict], rendered: str, add_generation_prompt: bool = True) -> list:
        """Where each message's content stands in `rendered`: [(start, end)] in order.

        The template is rendered once more with a marker in place of each content; where that
        rendering, markers put back, is the real one, the markers' places are the spans. A template
        that rewrites contents (trims them, say) falls back to finding each content, in order.
        """
        contents = [m.get("content") for m in messages if isinstance(m, dict)]
        if not any(isinstance(c, str) and c for c in contents):
            return []
        marks = [f"\ue000{k}\ue001" for k in range(len(messages))]
        marked = [dict(m, content=mark) if isinstance(m, dict) and isinstance(m.get("content"), str) else m
                  for m, mark in zip(messages, marks)]
        try:
            layout = self.render(marked, add_generation_prompt=add_generation_prompt)
        except ChatTemplateError:
            layout = ""
        spans, text, at = [], [], 0
        for k, part in enumerate(re.split("\ue000(\\d+)\ue001", layout)):
            if k % 2:
                content = messages[int(part)]["content"]
                spans.append((at, at + len(content)))
                part = content
            text.append(part)
            at += len(part)
        if layout and "".join(text) == rendered:
            return spans
        spans, at = [], 0
        for c in contents:
            if isinstance(c, str) and c.strip():
                c = c if c in rendered[at:] else c.strip()
                found = rendered.find(c, at)
                if found >= 0:
                    spans.append((found, found + len(c)))
                    at = found + len(c)
        return spans

    def tokenize(self, tokenizer: Tokenizer, rendered: str, literal=()) -> list[int]:
        """Token ids of text this template rendered: special tokens as ids (but not inside the `literal`
        spans, the messages' contents), BOS as configured."""
        ids = tokenizer.encode(rendered, special=True, literal=literal)
        if tokenizer.add_bos and tokenizer.bos_id >= 0 and ids[:1] != [tokenizer.bos_id]:
            ids = [tokenizer.bos_id] + ids
        return ids


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _first_line(e) -> str:
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:200]


def default_format(tokenizer) -> "ChatFormat | NoChat":
    """TinyLlama-Chat's format, for models that ship no template of their own (NoChat when the tokenizer
    has no end-of-sequence token, which that format ends each turn with)."""
    tokens = special_token_strings(tokenizer)
    if "eos_token" not in tokens:
        return NoChat()
    return ChatFormat(TINYLLAMA_TEMPLATE, tokens=tokens, source="TinyLlama's chat template")


class NoChat:
    """The chat format of a model that has none: no template, and no end-of-sequence token to end a turn
    (a model trained on plain text with a character tokenizer, say), or a base model of a family whose
    chat format is its own (Gemma 3 base). Rendering refuses, saying so."""
    source, text, tokens = "no chat template", "", {}

    def __init__(self, why: str = "its tokenizer has no end-of-sequence token to end a turn"):
        self.why = why

    def render(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        """Always refuses: ChatTemplateError saying why."""
        raise ChatTemplateError(f"this model has no chat template, and {self.why}: prompt it with plain text "
                                "instead")

    def encode(self, tokenizer, messages: list[dict], *, add_generation_prompt: bool = True) -> list[int]:
        """Always refuses, as render."""
        return self.render(messages)


def special_token_strings(tokenizer) -> dict[str, str]:
    """bos_token / eos_token as the template sees them: the tokens' own text."""
    out = {}
    for name, i in (("bos_token", tokenizer.bos_id), ("eos_token", tokenizer.eos_id)):
        if i is not None and i >= 0:
            out[name] = tokenizer.id_to_piece(i)
    return out


def encode_chat(tokenizer, messages: list[dict], *, add_generation_prompt: bool = True) -> list[int]:
    """Token ids of a conversation in TinyLlama's format (BOS, then the template, `</s>` as the EOS id)."""
    return default_format(tokenizer).encode(tokenizer, messages, add_generation_prompt=add_generation_prompt)


def render_chat(messages: list[dict], *, add_generation_prompt: bool = True, eos_token: str = "</s>") -> str:
    """Render messages [{"role", "content"}] exactly as TinyLlama's chat template does."""
    fmt = ChatFormat(TINYLLAMA_TEMPLATE, tokens={"eos_token": eos_token, "bos_token": "<s>"})
    return fmt.render(messages, add_generation_prompt=add_generation_prompt)
