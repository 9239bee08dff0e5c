"""TinyLlama-Chat's conversation format (the `chat_template` of its tokenizer_config.json).

    <|system|>\n{system}</s>\n<|user|>\n{prompt}</s>\n<|assistant|>\n

`<|system|>`, `<|user|>`, `<|assistant|>` are plain text (several ordinary pieces each); only
`</s>` is special: it is the EOS token (id 2), never the text "</s>". The rendered string is
tokenized with BOS in front and `</s>` pulled out as its id; the text between two special
tokens is encoded on its own, as Hugging Face's tokenizer does (so after each `</s>` the
"\n" gets the dummy-prefix "▁" piece, exactly as TinyLlama saw it in training).
"""

ROLES = ("system", "user", "assistant")


def render_chat(messages: list[dict], *, add_generation_prompt: bool = True, eos_token: str = "</s>") -> str:
    """Render messages [{"role", "content"}] exactly as TinyLlama's chat template does."""
    out = []
    for m in messages:
        if m["role"] not in ROLES:
            raise ValueError(f"unknown chat role {m['role']!r} (expected one of {', '.join(ROLES)})")
        out.append(f"<|{m['role']}|>\n{m['content']}{eos_token}\n")
    if add_generation_prompt:
        out.append("<|assistant|>\n")
    return "".join(out)


def encode_chat(tokenizer, messages: list[dict], *, add_generation_prompt: bool = True) -> list[int]:
    """Token ids of a conversation: BOS, then the rendered template with `</s>` as the EOS id."""
    text = render_chat(messages, add_generation_prompt=add_generation_prompt,
                       eos_token=tokenizer.pieces[tokenizer.eos_id])
    return tokenizer.encode_with_special(text, bos=True)
