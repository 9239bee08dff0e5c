"""The report card: a model's numbers on the benchmarks, with intervals, its file and hash, when and how
long, and each model card's published number beside ours with how the methods differ.
"""
import hashlib
import json
import time
from pathlib import Path

from files.atomic import write_atomic

# Published numbers (each card's own harness and prompt format: expect a few points of difference)
PUBLISHED = {
    "SmolLM2-135M-Instruct": {"hellaswag": (40.9, "lighteval, zero-shot, acc_norm"),
                              "piqa": (66.3, "lighteval, zero-shot")},
    "gemma-3-270m": {"hellaswag": (40.9, "10-shot"), "piqa": (67.7, "0-shot")},
}
METHOD = ("ours: llama.cpp's scoring, zero-shot: each choice as context + ' ' + choice, the tokens after the "
          "choices' shared prefix scored; acc_norm picks the highest mean log-probability per token, acc the "
          "highest sum. Cards use lm-evaluation-harness / lighteval prompts (HellaSwag's acc_norm there divides "
          "by characters, not tokens), some with few-shot examples.")


def file_sha256(path) -> str:
    """The SHA-256 of a file (the model the numbers belong to)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def published_for(source: str) -> dict:
    """The published numbers of the model whose file name contains a known model's name."""
    name = Path(source).name.lower()
    for model, numbers in PUBLISHED.items():
        if model.lower() in name:
            return {"model": model, **{task: {"value": v, "how": how} for task, (v, how) in numbers.items()}}
    return {}


def card(source: str, results: dict, seconds: float) -> dict:
    """The report card as data: {"model", "sha256", "date", "seconds", "results", "published", "method"}."""
    path = Path(source)
    return {"model": str(source), "sha256": file_sha256(path) if path.is_file() else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(seconds, 1), "results": results,
            "published": published_for(source), "method": METHOD}


def markdown(c: dict) -> str:
    """The report card as a markdown table."""
    lines = [f"# Report card: {Path(c['model']).name}", "",
             f"file `{c['model']}`, sha256 `{c['sha256']}`, {c['date']}, {c['seconds']} s", "",
             "| task | items / chunks | ours | 95% interval | time | published | published method |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    pub = c["published"]
    for task, r in c["results"].items():
        resumed = r.get("resumed", 0)             # items an earlier run scored (evaluate.py --resume): not timed here
        count = r["chunks"] if task == "perplexity" else r["items"] - resumed
        unit = "chunks" if task == "perplexity" else "items"
        spent = "; ".join(([f"{r['seconds']:.0f} s ({count / r['seconds']:.2f} {unit}/s)"] if r.get("seconds") else [])
                          + ([f"{resumed} items from an earlier run"] if resumed else []))
        if task == "perplexity":
            lines.append(f"| perplexity (WikiText-2, ctx {r['ctx']}) | {r['chunks']} chunks | {r['ppl']:.4f} | "
                         f"+/- {r['stderr']:.4f} | {spent} | | |")
            continue
        p = pub.get(task, {})
        for metric in ("acc_norm", "acc"):
            lo, hi = r[metric + "_interval"]
            shown = f"{p['value']}" if p and metric == "acc_norm" else ""
            lines.append(f"| {task} {metric} | {r['items']} | {100 * r[metric]:.2f} | {100 * lo:.2f} - {100 * hi:.2f} | "
                         f"{spent if metric == 'acc_norm' else ''} | {shown} | "
                         f"{p.get('how', '') if metric == 'acc_norm' else ''} |")
    return "\n".join(lines + ["", c["method"], ""])


def write_card(c: dict, out_dir) -> tuple[Path, Path]:
    """report.md and report.json in out_dir (each complete or absent)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "report.json", json.dumps(c, indent=1).encode())
    write_atomic(out / "report.md", markdown(c).encode())
    return out / "report.md", out / "report.json"


def read_card(path) -> dict:
    """A report.json that write_card wrote, checked: {"model", "results": {task: {...}}, ...} (the page shows it)."""
    from files.json_file import read_json
    from .datasets import DataError
    try:
        c = read_json(path, 1 << 20)
    except ValueError as e:                       # JSONFileError names the file
        raise DataError("report", str(e)) from None
    results = c.get("results") if isinstance(c, dict) else None
    if not isinstance(results, dict) or not results or not isinstance(c.get("model"), str):
        raise DataError("report", f"{path}: not a report card (evaluate.py --report writes report.json)")
    for task, r in results.items():
        need = ("ppl", "stderr", "chunks") if task == "perplexity" else ("acc", "acc_norm", "items", "acc_interval",
                                                                          "acc_norm_interval")
        if not isinstance(r, dict) or any(k not in r for k in need):
            raise DataError("report", f"{path}: results.{task} lacks {', '.join(k for k in need if k not in (r or {}))}")
    return c
