"""Pre-tokenizer regexes, by name, with where each comes from: the one place they live.

A byte-level BPE never merges across the chunks its regex cuts, so the regex decides what can
become one token: " hello" yes, "hello," no. Each family has its own:

  gpt2     GPT-2 (OpenAI's encoder.py; also HF's ByteLevel `use_regex`)
  cl100k   GPT-4 / GPT-3.5 (tiktoken's cl100k_base)
  o200k    GPT-4o (tiktoken's o200k_base)
  llama3   Llama-3.x (the `pat_str` of Meta's tokenizer.py, a cl100k variant)
  qwen2    Qwen2 / Qwen2.5 (its tokenizer.json: cl100k, but digits one at a time)

GGUF files name their pre-tokenizer in `tokenizer.ggml.pre`; `GGUF_PRE` maps those names to the
regex list llama.cpp applies (src/llama-vocab.cpp, `llm_tokenizer_bpe`): each regex cuts the
chunks the previous one left, keeping what it does not match as chunks too.
"""

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CL100K = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
          r"""|\s*[\r\n]|\s+(?!\S)|\s+""")
O200K = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+""",
])
LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
          r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
         r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

NAMED = {"gpt2": GPT2, "cl100k": CL100K, "o200k": O200K, "llama3": LLAMA3, "qwen2": QWEN2}

# llama.cpp's spelling of the same expressions (case variants written out instead of (?i:...))
_CONTRACTIONS = r"""(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"""
_GPT2_CPP = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"""
_LLAMA3_CPP = _CONTRACTIONS + r"""|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
_QWEN2_CPP = _CONTRACTIONS + r"""|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
_TEKKEN_CPP = _CONTRACTIONS + r"""|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
_DEFAULT_CPP = [r"""[\p{P}\$\+<=>\^~\|]+""", _GPT2_CPP, r"""\p{N}+""", r"""[0-9][0-9][0-9]"""]


class PreTokenizerSpec:
    """What a GGUF pre-tokenizer name means: its regex list and llama.cpp's per-name flags."""

    def __init__(self, regexes: list[str], *, ignore_merges: bool = False, add_bos: bool | None = None):
        self.regexes = regexes
        self.ignore_merges = ignore_merges
        self.add_bos = add_bos  # None: the file (or llama.cpp's default) decides


_SMOLLM = PreTokenizerSpec([r"\p{N}", _GPT2_CPP])
_LLAMA3_SPEC = PreTokenizerSpec([_LLAMA3_CPP], ignore_merges=True, add_bos=True)
_QWEN2_SPEC = PreTokenizerSpec([_QWEN2_CPP])
_GPT2_SPEC = PreTokenizerSpec([_GPT2_CPP])
GGUF_DEFAULT = "default"
GGUF_PRE = {
    "default": PreTokenizerSpec(_DEFAULT_CPP),
    **dict.fromkeys(["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"], _LLAMA3_SPEC),
    **dict.fromkeys(["dbrx", "smaug-bpe", "chatglm-bpe"], PreTokenizerSpec([_LLAMA3_CPP])),
    **dict.fromkeys(["gpt-2", "phi-2", "mpt", "olmo", "jais", "roberta-bpe"], _GPT2_SPEC),
    **dict.fromkeys(["qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan"], _QWEN2_SPEC),
    **dict.fromkeys(["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"], _SMOLLM),
    "tekken": PreTokenizerSpec([_TEKKEN_CPP], ignore_merges=True, add_bos=True),
}
