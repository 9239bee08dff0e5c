"""`ollama:NAME[:TAG]`: the GGUF file ollama already keeps on this machine.

ollama stores models under `$OLLAMA_MODELS` (default `~/.ollama/models`):
    manifests/registry.ollama.ai/library/NAME/TAG     a JSON manifest (namespace "library" by default)
    blobs/sha256-<64 hex>                             content-addressed files
The manifest's layer with mediaType `application/vnd.ollama.image.model` is the GGUF. Names and
digests come from files, so they are checked before they become paths: a digest must be
`sha256:` and 64 hex digits, and a name may not climb out of the manifests folder.
"""
import json
import os
import re
from pathlib import Path

PREFIX = "ollama:"
MODEL_LAYER = "application/vnd.ollama.image.model"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_MANIFEST = 1 << 20


class OllamaError(ValueError):
    """An ollama model that cannot be found or whose manifest is malformed."""


def models_dir() -> Path:
    """ollama's model store: $OLLAMA_MODELS, or ~/.ollama/models."""
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")


def resolve(spec: str) -> Path:
    """The GGUF blob of `ollama:NAME[:TAG]` (NAME may be `namespace/name` or `host/namespace/name`)."""
    name = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    name, _, tag = name.partition(":")
    tag = tag or "latest"
    parts = name.split("/")
    if len(parts) == 1:
        parts = ["registry.ollama.ai", "library"] + parts
    elif len(parts) == 2:
        parts = ["registry.ollama.ai"] + parts
    if len(parts) != 3 or not all(NAME_PART.fullmatch(p) for p in parts + [tag]):
        raise OllamaError(f"{spec}: not an ollama model name (NAME[:TAG], letters, digits, '.', '_', '-')")
    root = models_dir()
    manifest = root / "manifests" / Path(*parts) / tag
    try:
        with open(manifest, "rb") as f:
            data = f.read(MAX_MANIFEST + 1)
    except OSError:
        raise OllamaError(f"{spec}: no ollama manifest at {manifest} (is the model pulled? `ollama pull "
                          f"{name}:{tag}`; set OLLAMA_MODELS if ollama keeps models elsewhere)") from None
    if len(data) > MAX_MANIFEST:
        raise OllamaError(f"{manifest}: manifest larger than 1 MB")
    try:
        layers = json.loads(data)["layers"]
        digests = [layer["digest"] for layer in layers
                   if isinstance(layer, dict) and layer.get("mediaType") == MODEL_LAYER]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise OllamaError(f"{manifest}: not a valid ollama manifest (no layers)") from None
    if len(digests) != 1:
        raise OllamaError(f"{manifest}: expected one model layer, found {len(digests)}")
    digest = digests[0]
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise OllamaError(f"{manifest}: model layer digest {str(digest)[:80]!r} is not sha256:<64 hex>")
    blob = root / "blobs" / digest.replace(":", "-")
    if not blob.is_file():
        raise OllamaError(f"{manifest}: the model blob {blob} is missing")
    return blob
