"""The Hugging Face folder a run writes (and `generate.py --model` and transformers'
`from_pretrained` both load): config.json, model.safetensors (the `safetensors` package),
the tokenizer as a file both loaders read, tokenizer_config.json and generation_config.json.

Every file is written whole or not at all (a temp file renamed into place).
"""
import json
from pathlib import Path

import numpy as np

from files.atomic import write_atomic
from files.safetensors import save_safetensors

from ..config import LlamaConfig

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen3": "Qwen3ForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}


class ExportError(ValueError):
    """Something a Hugging Face folder cannot express, named."""


def config_json(cfg: LlamaConfig) -> dict:
    """config.json for our config, in transformers' field names."""
    if cfg.rope_divisors is not None:
        raise ExportError("a GGUF's rope_freqs divisors (Llama-3 scaling stored as a tensor) have no config.json form")
    if cfg.model_type == "llama" and cfg.qkv_bias != cfg.o_bias:
        raise ExportError("biases on q, k, v without one on o_proj have no Llama config.json form")
    out = {
        "architectures": [ARCHITECTURES[cfg.model_type]], "model_type": cfg.model_type,
        "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim, "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings, "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta, "rope_scaling": cfg.rope_scaling, "tie_word_embeddings": cfg.tie_word_embeddings,
        "hidden_act": "silu", "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
        "torch_dtype": "float32", "initializer_range": 0.02,
    }
    if cfg.model_type == "gemma3_text":
        del out["rope_theta"], out["rope_scaling"], out["hidden_act"]
        out.update(hidden_activation="gelu_pytorch_tanh", sliding_window=max(w for w in cfg.windows if w),
                   layer_types=["sliding_attention" if w else "full_attention" for w in cfg.windows],
                   rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": cfg.rope_theta,
                                                       **(cfg.rope_scaling or {})},
                                    "sliding_attention": {"rope_type": "default", "rope_theta": cfg.local_rope_theta}},
                   query_pre_attn_scalar=_pre_attn_scalar(cfg), final_logit_softcapping=None,
                   attn_logit_softcapping=None, attention_bias=False)
    elif cfg.model_type == "qwen3":
        out.update(attention_bias=False, use_sliding_window=False, sliding_window=None)
        if any(w is not None for w in cfg.windows):
            raise ExportError("Qwen3 sliding windows are not exported")
    elif cfg.model_type == "llama":
        out.update(attention_bias=cfg.qkv_bias, mlp_bias=False)
    elif cfg.model_type == "qwen2":
        windows = {w for w in cfg.windows if w is not None}
        if windows:
            raise ExportError("Qwen2 sliding windows are not exported")
        out.update(use_sliding_window=False, sliding_window=None)
    else:  # mistral: one window on every layer
        out["sliding_window"] = cfg.windows[0] if cfg.windows else None
    return out


def _pre_attn_scalar(cfg: LlamaConfig) -> float:
    """Gemma 3's query_pre_attn_scalar back from the score scale (an integer where it was one)."""
    value = (cfg.attn_scale or cfg.head_dim ** -0.5) ** -2
    return int(round(value)) if abs(value - round(value)) < 1e-6 * value else value


def hf_weights(cfg: LlamaConfig, weights: dict) -> dict:
    """The weights as an HF checkpoint stores them: Gemma's norms as w where y = xhat (1 + w) (a GGUF's
    stored 1 + w loses its 1), everything else as it is."""
    if cfg.model_type != "gemma3_text" or cfg.norm_offset == 1.0:
        return weights
    one = np.float32(1.0 - cfg.norm_offset)
    return {n: (w - w.dtype.type(one) if n.endswith("norm.weight") else w) for n, w in weights.items()}


def tokenizer_files(tok, source: Path | None) -> dict[str, bytes]:
    """The tokenizer as files of the folder: tokenizer.json from our own kinds, or the source file copied.

    A SentencePiece `.model` is kept as tokenizer.model (transformers' LlamaTokenizer reads it).
    """
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    for name, i in (("bos_token", tok.bos_id), ("eos_token", tok.eos_id)):
        if i >= 0:
            config[name] = tok.id_to_piece(i)
    data = source.read_bytes() if source is not None and source.is_file() and source.suffix != ".gguf" else b""
    if data.lstrip()[:1] == b"{":                          # a tokenizer.json: kept as it is
        files = {"tokenizer.json": data}
    else:                                                   # the tokenizer's own form (bpe/interface.py hf_files)
        try:
            files = tok.hf_files()
        except ValueError:
            raise ExportError(f"the tokenizer of {source} has no file form both loaders read "
                              "(use a tokenizer.json, a SentencePiece .model, char or bpe:N)") from None
        if "tokenizer.model" in files:                      # SentencePiece (a .model file, or a GGUF's)
            config.update(tokenizer_class="LlamaTokenizer", add_bos_token=tok.add_bos, add_eos_token=False, legacy=True)
    files["tokenizer_config.json"] = json.dumps(config, indent=1).encode()
    return files


def generation_config(cfg: LlamaConfig, tok) -> dict:
    """generation_config.json: nanoGPT's sampling defaults (temperature 0.8, top-k 200) and the stop ids."""
    return {"bos_token_id": cfg.bos_token_id, "eos_token_id": sorted(tok.stop_ids) or cfg.eos_token_id,
            "do_sample": True, "temperature": 0.8, "top_k": 200, "top_p": 1.0}


def write_folder(out: Path, cfg: LlamaConfig, weights: dict, tok, tok_files: dict[str, bytes], step: int) -> None:
    """The model part of a checkpoint: every file a Hugging Face loader reads."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: w for n, w in hf_weights(cfg, weights).items()
               if not (cfg.tie_word_embeddings and n == "lm_head.weight")}
    save_safetensors(out / "model.safetensors", tensors, "F32", {"format": "pt", "step": str(step)})
    for name, data in tok_files.items():
        write_atomic(out / name, data)
    write_atomic(out / "generation_config.json", json.dumps(generation_config(cfg, tok), indent=1).encode())
    write_atomic(out / "config.json", json.dumps(config_json(cfg), indent=1).encode())
