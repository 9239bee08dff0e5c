"""Starting and resuming runs: every check happens before a folder is made, so a refused run
leaves nothing behind; a resumed run continues from its trainer_state.json bit for bit."""
import hashlib
import json
import os
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np

from ..config import LlamaConfig
from ..errors import OptionError
from ..speed import fused_layout
from ..weights import load_checkpoint, load_tensors
from .data import DataError, check_splits, encode_split, make_tokenizer, read_corpus, split_text
from .dpo import pairs, read_pairs
from .lora import PROJECTIONS, LoRA
from .sft import chat_for_tuning, examples, read_conversations
from .export import ExportError, config_json, tokenizer_files
from .loop import FORMAT, STATE, TrainingRun
from .optim import AdamW
from .recipe import SHAPE, TrainSettings, SettingsError, init_weights, new_config

RUN_FILES = {"adapter", "config.json", "model.safetensors", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
             "generation_config.json", "optimizer.safetensors", STATE, "log.jsonl", "steps.jsonl", "loss.png", "chat_template.jinja"}


class RunError(OptionError):
    """A run that cannot start or resume, with the value or file named (and the parameter, `option`)."""


def check_out(out: Path, force: bool) -> None:
    """The output folder must be new, or (with --force) an earlier run's folder, inside a writable parent."""
    if out.exists() or out.is_symlink():
        if not force:
            raise RunError("out", f"{out} exists: choose a new folder, resume it, or force its replacement")
        if not out.is_dir():
            raise RunError("out", f"{out} is a file, not a run folder; not replacing it")
        if not set(p.name for p in out.iterdir()) <= RUN_FILES | {".tmp-"}:
            raise RunError("out", f"{out} is not a run folder (it holds other files); not replacing it")
    parent = out.absolute().parent
    while not parent.exists():             # folders still to make, like mkdir -p
        parent = parent.parent
    if not parent.is_dir():
        raise RunError("out", f"{out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError("out", f"{out}: cannot write in {parent}")


def make_folder(out: Path, force: bool) -> list[Path]:
    """Create the run's folder and any missing parents (replacing an earlier run's with --force);
    return the folders made, outermost first, so a run that fails can take them away again."""
    if force and out.exists():
        shutil.rmtree(out)
    made = [p for p in [*reversed(out.absolute().parents), out.absolute()] if not p.exists()]
    out.mkdir(parents=True)
    return made


def fingerprint(ids: np.ndarray) -> str:
    """A short hash of a split's ids: resuming on another corpus or tokenizer is caught."""
    return hashlib.sha256(np.ascontiguousarray(ids, np.int32).tobytes()).hexdigest()[:16]


def new_run(corpus, out, settings: TrainSettings, *, init: str | None = None, force: bool = False,
            notice=print, sft: str | None = None, val_fraction: float = 0.1, lora: int | None = None,
            lora_alpha: float | None = None, lora_targets=PROJECTIONS, dpo: str | None = None,
            beta: float = 0.1) -> TrainingRun:
    """Check everything, then build the run (its folder is made, empty, at the end). With `sft`, instruction
    tuning of the `init` model on that file's examples (model/train/sft.py), `val_fraction` of them held out."""
    out = Path(out)
    if sft is not None and init is None:
        raise RunError("sft", f"{sft}: instruction tuning starts from a model with a tokenizer (init)")
    if dpo is not None and (init is None or sft is not None):
        raise RunError("dpo", f"{dpo}: preference tuning starts from a model (init), on its own data (no sft)")
    if lora is not None and init is None:
        raise RunError("lora", f"{lora}: adapters are trained on a model to start from (init)")
    if not 0 < val_fraction < 1:
        raise RunError("val_fraction", f"{val_fraction}: must be between 0 and 1")
    settings = settings.checked()
    check_out(out, force)
    if dpo is not None:
        preferences = read_pairs(dpo)
        extra = {"dpo": str(Path(dpo).resolve()), "val_fraction": val_fraction, "beta": beta}
    elif sft is None:
        text = read_corpus(corpus)
        train_text, val_text = split_text(text)
        extra = {"corpus": str(Path(corpus).resolve())}
    else:
        conversations = read_conversations(sft)
        extra = {"sft": str(Path(sft).resolve()), "val_fraction": val_fraction}
    if init is None:
        tok = make_tokenizer(settings.tokenizer, train_text, text, notice)
        source = Path(settings.tokenizer) if Path(settings.tokenizer).is_file() else None
        cfg = new_config(settings, tok.vocab_size, tok.bos_id if tok.bos_id >= 0 else None,
                         tok.eos_id if tok.eos_id >= 0 else None)
        weights = init_weights(cfg, np.random.default_rng([settings.seed, 0]))
    else:
        cfg, weights, tok, source, chat = from_init(init, settings)
        extra["init"] = init
    try:
        tok_files = tokenizer_files(tok, source)
        config_json(cfg)
    except ExportError as e:
        raise RunError("init" if init else "tokenizer", f"{init or settings.tokenizer}: {e}") from None
    if init is not None:
        kept = source_files(Path(init))
        if "tokenizer_config.json" not in kept and chat.text:   # a GGUF: its chat template into tokenizer_config.json
            config = json.loads(tok_files["tokenizer_config.json"])
            tok_files["tokenizer_config.json"] = json.dumps({**config, "chat_template": chat.text}, indent=1).encode()
        tok_files.update(kept)
    if sft is None and dpo is None:
        train, val = encode_split(tok, train_text), encode_split(tok, val_text)
        check_splits(train, val, settings.context)
    else:
        tuned = chat_for_tuning(chat, tok)
        if tuned is not chat:                    # the plain format becomes the model's chat template
            config = json.loads(tok_files.get("tokenizer_config.json", b"{}"))
            tok_files["tokenizer_config.json"] = json.dumps({**config, "chat_template": tuned.text}, indent=1).encode()
            tok_files.pop("chat_template.jinja", None)
        if dpo is None:
            train, val = examples(tuned, tok, conversations, settings.context, val_fraction, settings.seed, notice)
        else:                                    # the reference: the start, before any step (LoRA: B = 0)
            train, val = pairs(tuned, tok, cfg, weights, preferences, settings.context, val_fraction, beta,
                               settings.seed, settings.batch, notice)
            extra["dpo_reference"] = {"train": train.ref.tolist(), "val": val.ref.tolist()}   # for --resume
    if max(int(train.ids.max()), int(val.ids.max())) >= cfg.vocab_size:
        raise RunError(None, f"the tokenizer gives ids up to {max(train.ids.max(), val.ids.max())} but the model has "
                       f"{cfg.vocab_size} embeddings")
    extra.update(train_ids=fingerprint(train.ids), val_ids=fingerprint(val.ids))
    adapters = None
    if lora is not None:
        adapters = LoRA.new(weights, lora, lora_alpha if lora_alpha is not None else 2 * lora, lora_targets,
                            np.random.default_rng([settings.seed, 4]))
        extra["lora"] = {"r": adapters.r, "alpha": adapters.alpha, "targets": list(adapters.targets)}
    made = make_folder(out, force)
    if settings.steps <= settings.warmup:          # said once everything is checked
        notice(f"note: {settings.steps} steps, all within the {settings.warmup} warmup steps: the learning rate "
               f"only rises, to {settings.lr * settings.steps / (settings.warmup + 1):.3g}, and never decays")
    opt = AdamW(adapters.params if adapters else weights, betas=(settings.beta1, settings.beta2),
                weight_decay=settings.weight_decay)
    return TrainingRun(settings, cfg, weights, opt, tok, tok_files, train, val, out,
               np.random.default_rng([settings.seed, 1]), extra=extra, made=made, lora=adapters)


def trainable_copy(cfg: LlamaConfig, w: dict) -> dict:
    """Our own float32 copy of a model's weights to update, each layer's matrices back to back (the fused
    layout of model/speed.py), so the block's q|k|v and gate|up are views, not copies made every step."""
    layout = fused_layout(cfg, huge=False)
    weights = {}
    for n, a in w.items():
        weights[n] = layout[n] if n in layout else np.empty(a.shape, np.float32)
        weights[n][...] = a
    return weights


def from_init(spec: str, settings: TrainSettings):
    """Fine-tuning: the model, tokenizer and architecture of an existing `--model` spec."""
    from ..formats.loader import load
    try:
        loaded = load(spec)
    except (ValueError, OSError) as e:
        raise RunError("init", f"{spec}: {e}") from None
    cfg = loaded.model.cfg
    if settings.context > cfg.max_position_embeddings:
        raise RunError("context", f"{settings.context} is beyond the context of {spec} ({cfg.max_position_embeddings})")
    weights = trainable_copy(cfg, loaded.model.w)
    if cfg.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    folder = Path(spec)
    source = None
    for name in ("tokenizer.json", "tokenizer.model"):
        if folder.is_dir() and (folder / name).is_file():
            source = folder / name
            break
    return cfg, weights, loaded.tokenizer, source, loaded.chat


def source_files(folder: Path) -> dict[str, bytes]:
    """A fine-tuned folder keeps its source's tokenizer settings and chat template."""
    out = {}
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        if folder.is_dir() and (folder / name).is_file():
            out[name] = (folder / name).read_bytes()
    return out


def resume(out, given: dict, corpus=None, notice=print) -> TrainingRun:
    """The run saved in `out`, continued: the same settings, except options given that do not change
    the model's shape (a longer --steps, say: the notice says what that does to the schedule)."""
    from bpe.files import load_tokenizer
    out = Path(out)
    try:
        state = json.loads((out / STATE).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("not a trainer_state.json of ours")
        saved = TrainSettings(**{f.name: state["settings"][f.name] for f in fields(TrainSettings)})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError("resume", f"{out}: no complete checkpoint there ({getattr(e, 'strerror', None) or e})") from None
    for name in SHAPE:
        if given.get(name) is not None and given[name] != getattr(saved, name):
            raise RunError(name, f"{given[name]} differs from the saved model's {getattr(saved, name)} in {out} "
                                 "(a different model shape)")
    settings = saved.with_options(**{k: v for k, v in given.items() if k not in SHAPE})
    step = int(state["step"])
    if settings.steps != saved.steps:
        from .optim import lr_at
        was = lr_at(step, lr=saved.lr, min_lr=saved.min_lr, warmup=saved.warmup, steps=saved.steps)
        now = lr_at(step, lr=settings.lr, min_lr=settings.min_lr, warmup=settings.warmup, steps=settings.steps)
        notice(f"note: {settings.steps} steps instead of {saved.steps}: the cosine schedule now ends at step "
               f"{settings.steps}, so the learning rate at step {step} becomes {now:.3g} (it was {was:.3g})")
    if step > settings.steps:
        raise RunError("resume", f"{out}: the checkpoint is at step {step}, past the {settings.steps} steps asked for")
    cfg = LlamaConfig.load(out / "config.json")
    weights = load_checkpoint(out, cfg, into=fused_layout(cfg, huge=False))   # with LoRA: merged, W0 + s B A
    adapters = None
    if "lora" in state:
        spec = state["lora"]
        adapters = LoRA.load(out / "adapter", weights, int(spec["r"]), float(spec["alpha"]), spec["targets"])
    moments = load_tensors(out / "optimizer.safetensors")
    trained = adapters.params if adapters is not None else weights
    opt = AdamW(trained, betas=(settings.beta1, settings.beta2), weight_decay=settings.weight_decay)
    try:
        for n in trained:
            opt.m[n][...], opt.v[n][...] = moments[f"m.{n}"], moments[f"v.{n}"]
    except (KeyError, ValueError) as e:
        raise RunError("resume", f"{out}: optimizer.safetensors does not match the model ({e})") from None
    opt.t = int(state["adam_t"])
    tok_name = "tokenizer.json" if (out / "tokenizer.json").is_file() else "tokenizer.model"
    tok = load_tokenizer(out / tok_name)
    tok_files = {p.name: p.read_bytes() for p in out.iterdir()
                 if p.name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "chat_template.jinja")}
    if "sft" in state or "dpo" in state:          # tuning: the same examples or pairs, the same split
        from ..formats.loader import load
        chat = chat_for_tuning(load(str(out)).chat, tok)
        fraction = float(state.get("val_fraction", 0.1))
        if "sft" in state:
            corpus = corpus or state["sft"]
            train, val = examples(chat, tok, read_conversations(corpus), settings.context, fraction, settings.seed,
                                  notice)
        else:                                     # the reference's log-probabilities as the run saved them
            corpus = corpus or state["dpo"]
            saved = state.get("dpo_reference") or {}
            train, val = pairs(chat, tok, cfg, weights, read_pairs(corpus), settings.context, fraction,
                               float(state["beta"]), settings.seed, settings.batch, notice,
                               reference=(saved.get("train"), saved.get("val")))
    else:
        corpus = corpus or state.get("corpus")
        train_text, val_text = split_text(read_corpus(corpus))
        train, val = encode_split(tok, train_text), encode_split(tok, val_text)
    if fingerprint(train.ids) != state.get("train_ids") or fingerprint(val.ids) != state.get("val_ids"):
        raise RunError("resume", f"{out}: {corpus} is not the corpus this run trained on")
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    extra = {k: state[k] for k in ("corpus", "sft", "dpo", "beta", "dpo_reference", "lora", "val_fraction", "init",
                                   "train_ids", "val_ids", "train_s") if k in state}
    extra[next(k for k in ("sft", "dpo", "corpus") if k in state or k == "corpus")] = str(Path(corpus).resolve())
    return TrainingRun(settings, cfg, weights, opt, tok, tok_files, train, val, out, rng, step=step, extra=extra,
                       lora=adapters)


__all__ = ["DataError", "RunError", "SettingsError", "new_run", "resume"]
