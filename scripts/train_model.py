#!/usr/bin/env python3
"""Train a Llama from scratch in NumPy (hand-written backward pass), or fine-tune one, on a text file.

  python scripts/train_model.py --input corpus.txt --out runs/shakespeare --preset shakespeare-char
  python scripts/train_model.py --input corpus.txt --out runs/bpe --tokenizer bpe:512
  python scripts/train_model.py --input my.txt --out runs/tuned --init smollm2 --steps 20 --batch 2 --context 128
  python scripts/train_model.py --resume runs/shakespeare            # after Ctrl-C, or with a larger --steps

The folder is a Hugging Face layout (config.json, model.safetensors, tokenizer.json, ...):
`scripts/generate.py --model runs/NAME` and transformers' from_pretrained both load it. It also
holds log.jsonl (every evaluation), loss.png and the optimizer state for --resume.
"""
import argparse
import shutil
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bpe.cli import Parser  # noqa: E402
from model.train.loop import Diverged, Interrupted, train  # noqa: E402
from model.train.lora import PROJECTIONS  # noqa: E402
from model.train.recipe import PRESETS, TrainSettings, count_parameters  # noqa: E402
from model.train.runs import new_run, resume  # noqa: E402

HELP = {
    "steps": "optimizer steps", "batch": "sequences per step", "context": "tokens per sequence (the context)",
    "lr": "peak learning rate", "min_lr": "learning rate at the end of the cosine", "warmup": "linear warmup steps",
    "weight_decay": "AdamW weight decay (matrices only)", "beta1": "AdamW beta1", "beta2": "AdamW beta2",
    "clip": "clip the gradient's global norm to this", "eval_every": "evaluate and checkpoint every N steps",
    "eval_windows": "windows of each split in a periodic evaluation (the last one uses all of validation)",
    "seed": "seed of the initial weights and the batches", "layers": "blocks", "dim": "hidden size",
    "heads": "query heads", "kv_heads": "key/value heads (grouped-query attention)", "ffn": "SwiGLU hidden size",
    "rope_theta": "rotary base", "rms_norm_eps": "RMSNorm epsilon",
    "tokenizer": "char (sorted characters), bpe:N (our byte-level BPE on the training split) or a tokenizer file",
}


def parse_args(argv):
    """Options: where, what to start from, and every number of the recipe."""
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="the training text (UTF-8); the first 90%% trains, the last 10%% validates")
    p.add_argument("--out", help="the run's folder (must not exist unless --force)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="the recipe's defaults (default shakespeare-char, nanoGPT's CPU recipe as a Llama; with --sft "
                        "or --dpo: tuning, or tuning-lora with --lora)")
    p.add_argument("--init", metavar="SPEC", help="fine-tune this model (any --model spec of generate.py)")
    p.add_argument("--sft", metavar="FILE", help="instruction-tune --init on this file: Alpaca-style JSON "
                   "(instruction, input, output) or JSONL of {\"messages\": [...]}; the loss counts the answers only")
    p.add_argument("--val-fraction", type=float, default=0.1, help="--sft: the share of examples held out (default 0.1)")
    p.add_argument("--dpo", metavar="FILE", help="preference-tune --init (DPO) on pairs: a JSON list of instruction, "
                   "input, chosen, rejected; the reference is the starting model")
    p.add_argument("--beta", type=float, default=0.1, help="--dpo: how far from the reference (default 0.1)")
    p.add_argument("--lora", type=int, metavar="R", help="train rank-R adapters (LoRA) on --init's projections, the "
                   "base frozen; writes the merged model and DIR/adapter/ in PEFT's format")
    p.add_argument("--lora-alpha", type=float, metavar="ALPHA", help="--lora: W0 + (ALPHA/R) B A (default 2R)")
    p.add_argument("--lora-targets", default=",".join(PROJECTIONS),
                   help=f"--lora: comma-separated projections (default all: {','.join(PROJECTIONS)})")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    p.add_argument("--force", action="store_true", help="replace --out if it holds an earlier run")
    defaults = TrainSettings()
    for f in fields(TrainSettings):
        p.add_argument("--" + f.name.replace("_", "-"), type=f.type, metavar="N" if f.type is int else None,
                       help=f"{HELP[f.name]} (preset: {getattr(defaults, f.name)})")
    args = p.parse_args(argv)
    if args.resume is None and args.out is None:
        p.error("--out is needed (or --resume DIR)")
    if args.resume is None and args.input is None and args.sft is None and args.dpo is None:
        p.error("--input (a text), --sft (instructions) or --dpo (preference pairs) is needed (or --resume DIR)")
    for name in ("sft", "dpo", "lora"):
        if getattr(args, name) is not None and args.init is None:
            p.error(f"--{name} tunes a model: give --init SPEC")
    if args.sft is not None and args.dpo is not None:
        p.error("--sft and --dpo are two runs: instruction-tune first, then --dpo with --init the tuned folder")
    if args.resume is not None and (args.init or args.force or (args.out and Path(args.out) != Path(args.resume))):
        p.error("--resume continues a run as it was: no --init, --force or another --out")
    if args.init is not None and any(getattr(args, n) is not None for n in ("layers", "dim", "heads", "kv_heads",
                                                                            "ffn", "tokenizer", "rope_theta")):
        p.error("--init keeps the model's own shape and tokenizer: no --layers/--dim/--heads/--kv-heads/--ffn/"
                "--tokenizer/--rope-theta")
    return args


def main(argv=None) -> int:
    """Start (or resume) the run, train it, and say where it is."""
    args = parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in fields(TrainSettings)}
    run = None
    try:
        if args.resume:
            run = resume(args.resume, given, args.input, notice=lambda m: print(m, file=sys.stderr))
            print(f"resuming {run.out} at step {run.step}", file=sys.stderr)
        else:
            preset = args.preset or ("shakespeare-char" if args.sft is None and args.dpo is None else
                                     "tuning-lora" if args.lora is not None else "tuning")
            settings = PRESETS[preset].with_options(**given)
            run = new_run(args.input, args.out, settings, init=args.init, force=args.force,
                          notice=lambda m: print(m, file=sys.stderr), sft=args.sft, val_fraction=args.val_fraction,
                          lora=args.lora, lora_alpha=args.lora_alpha,
                          lora_targets=[t for t in args.lora_targets.split(",") if t], dpo=args.dpo, beta=args.beta)
            trained = "" if run.lora is None else f" ({count_parameters(run.trained):,} in the LoRA adapters, trained)"
            print(f"{count_parameters(run.weights):,} parameters{trained}, vocabulary {run.cfg.vocab_size}, "
                  f"{len(run.train.ids):,} training and {len(run.val.ids):,} validation tokens", file=sys.stderr)
        final = train(run)
        print(f"val loss {final['val_loss']:.4f} nats/token, {final['val_per_char']:.4f} nats/char "
              f"(whole validation split); model in {run.out}", file=sys.stderr)
        return 0
    except Interrupted as e:
        print(f"\n{e}: resume with --resume {run.out}", file=sys.stderr)
        return 130
    except Diverged as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the loop took over Ctrl-C: nothing to save
        leave_nothing(run, args)
        print(file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        leave_nothing(run, args)
        message = f"{e.filename or ''}: {e.strerror or e}" if isinstance(e, OSError) else Parser.error_line(e)
        print(f"error: {message}", file=sys.stderr)
        return 2


def leave_nothing(run, args) -> None:
    """A new run that failed before its first complete checkpoint leaves no folder."""
    if run is not None and not args.resume and not (run.out / "trainer_state.json").exists() and run.made:
        shutil.rmtree(run.made[0], ignore_errors=True)   # the outermost folder the run made


if __name__ == "__main__":
    sys.exit(main())
