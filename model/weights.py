"""The checked weight map of an HF checkpoint folder: which tensors a config needs, with which
shapes, and loading them (files/safetensors.py reads the container) as float32 by HF name.
"""
import json
from pathlib import Path

import numpy as np

from files.safetensors import (WeightsError, float32_to_bf16_bits, load_tensors, read_header,  # noqa: F401
                               save_safetensors)

from .config import LlamaConfig
from .speed import new_float32


def checkpoint_files(folder) -> tuple[dict[str, Path], dict[Path, tuple]]:
    """Map each tensor name to its file (`model.safetensors`, or the shards of an index),
    and each file to its parsed header (read once)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            raise WeightsError(f"{index}: not a valid safetensors index (no weight_map)") from None
        if not isinstance(weight_map, dict):
            raise WeightsError(f"{index}: weight_map must be an object {{tensor: file}}")
        for name, file in weight_map.items():
            # a shard is a plain file name inside the model folder: never a path that climbs out
            if not isinstance(file, str) or not file or file in (".", "..") or "/" in file or "\\" in file \
                    or "\0" in file:
                raise WeightsError(f"{index}: shard {str(file)[:80]!r} for {name} is not a file name in the folder")
        files = {name: folder / file for name, file in weight_map.items()}
        return files, {path: read_header(path) for path in set(files.values())}
    single = folder / "model.safetensors"
    if not single.exists():
        raise WeightsError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    header = read_header(single)
    return {name: single for name in header[0]}, {single: header}


def expected_shapes(cfg: LlamaConfig) -> dict[str, tuple]:
    """Every tensor a Llama checkpoint must hold (HF names), with its shape."""
    D, F, H, K, E, V = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads,
                        cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size)
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, D)
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (D,),
            p + "self_attn.q_proj.weight": (H * E, D),
            p + "self_attn.k_proj.weight": (K * E, D),
            p + "self_attn.v_proj.weight": (K * E, D),
            p + "self_attn.o_proj.weight": (D, H * E),
            p + "post_attention_layernorm.weight": (D,),
            p + "mlp.gate_proj.weight": (F, D),
            p + "mlp.up_proj.weight": (F, D),
            p + "mlp.down_proj.weight": (D, F),
        })
        if cfg.qkv_bias:  # Qwen2
            shapes.update({p + "self_attn.q_proj.bias": (H * E,), p + "self_attn.k_proj.bias": (K * E,),
                           p + "self_attn.v_proj.bias": (K * E,)})
        if cfg.o_bias:    # Llama with attention_bias
            shapes[p + "self_attn.o_proj.bias"] = (D,)
        if cfg.qk_norm:   # Qwen3, Gemma 3
            shapes.update({p + "self_attn.q_norm.weight": (E,), p + "self_attn.k_norm.weight": (E,)})
        if cfg.sandwich_norms:  # Gemma 3: four norms per block
            shapes.update({p + "pre_feedforward_layernorm.weight": (D,), p + "post_feedforward_layernorm.weight": (D,)})
    return shapes


def load_checkpoint(folder, cfg: LlamaConfig, into=None) -> dict[str, np.ndarray]:
    """Load and check every tensor of an HF-layout checkpoint folder, as float32 by HF name
    (into the arrays of `into`, such as fused_layout(cfg), where it has them)."""
    files, headers = checkpoint_files(folder)
    shapes = expected_shapes(cfg)
    ignorable = [n for n in files if n.endswith("rotary_emb.inv_freq")]  # recomputed from rope_theta
    if cfg.tie_word_embeddings:
        ignorable += [n for n in files if n == "lm_head.weight"]
    missing = [n for n in shapes if n not in files]
    extra = [n for n in files if n not in shapes and n not in ignorable]
    if missing:
        raise WeightsError(f"{folder}: checkpoint is missing {len(missing)} tensors, e.g. {missing[0]}")
    if extra:
        raise WeightsError(f"{folder}: checkpoint has unexpected tensors, e.g. {extra[0]}")
    by_file: dict[Path, list[str]] = {}
    for name in shapes:
        by_file.setdefault(files[name], []).append(name)
    weights = {}
    for path, names in by_file.items():
        header = headers[path][0]
        for name in names:
            if name not in header:
                raise WeightsError(f"{path}: tensor {name} (named in the index) is not in this file")
            if tuple(header[name]["shape"]) != shapes[name]:
                raise WeightsError(f"{path}: tensor {name} has shape {tuple(header[name]['shape'])}, "
                                   f"expected {shapes[name]} from config.json")
        weights.update(load_tensors(path, names, header=headers[path], into=into, alloc=new_float32))
    return weights
