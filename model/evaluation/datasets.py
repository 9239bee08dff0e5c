"""The evaluation data: multiple-choice items read from the files benchmarks ship, every line checked.

An item is a context and its choices (each a string that continues the context) and the index of
the right one. Files are untrusted: each problem is a DataError naming the file and line.
  HellaSwag (llama.cpp's six-line format): context, gold index 0-3, then the four endings
  PIQA: JSONL of {"goal", "sol1", "sol2"} and a labels file of 0 or 1 per line, line-aligned
  choice: JSONL of {"context": str, "choices": [str, ...], "label": int}, a learner's own questions
"""
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError

MAX_BYTES = 256 << 20     # a data file larger than this is refused before it is read
MAX_FIELD = 1 << 16       # characters in one context or choice
MAX_CHOICES = 64


class DataError(OptionError):
    """A data file in the wrong form; the message names the file and line."""


@dataclass(frozen=True)
class Item:
    """One multiple-choice question: the choices continue the context; `label` is the right one."""
    context: str
    choices: tuple
    label: int


def read_lines(path, option: str = "data") -> list[str]:
    """A UTF-8 text file's lines (without their line ends), size-checked first."""
    path = Path(path)
    if not path.is_file():
        raise DataError(option, f"{path}: no such file")
    if path.stat().st_size > MAX_BYTES:
        raise DataError(option, f"{path}: larger than {MAX_BYTES >> 20} MB")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(option, f"{path}: not UTF-8 text (byte {e.start})") from None
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def _field(path, line: int, value, name: str, option: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(option, f"{path}:{line}: '{name}' must be a non-empty string")
    if len(value) > MAX_FIELD:
        raise DataError(option, f"{path}:{line}: '{name}' is longer than {MAX_FIELD} characters")
    return value


def read_hellaswag(path) -> list[Item]:
    """llama.cpp's HellaSwag file: six lines per item (context, gold 0-3, four endings)."""
    lines = [l.rstrip("\r") for l in read_lines(path)]
    if not lines or len(lines) % 6:
        raise DataError("data", f"{path}: {len(lines)} lines, not a multiple of 6 (context, gold index, four endings "
                                f"per item: llama.cpp's HellaSwag format)")
    items = []
    for k in range(0, len(lines), 6):
        gold = lines[k + 1].strip()
        if gold not in ("0", "1", "2", "3"):
            raise DataError("data", f"{path}:{k + 2}: the gold index must be 0, 1, 2 or 3, got {gold[:20]!r}")
        context = _field(path, k + 1, lines[k], "context", "data")
        endings = tuple(_field(path, k + 3 + j, lines[k + 2 + j], "ending", "data") for j in range(4))
        items.append(Item(context, endings, int(gold)))
    return items


def jsonl_rows(path, option: str = "data", *, empty_ok: bool = False) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file, each checked to be a JSON object."""
    out = []
    for n, line in enumerate(read_lines(path, option), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise DataError(option, f"{path}:{n}: not JSON ({str(e)[:80]})") from None
        if not isinstance(value, dict):
            raise DataError(option, f"{path}:{n}: expected a JSON object")
        out.append((n, value))
    if not out and not empty_ok:
        raise DataError(option, f"{path}: no items")
    return out


def read_piqa(path, labels) -> list[Item]:
    """PIQA: {"goal", "sol1", "sol2"} per line, and a labels file (0 or 1 per line, the same count)."""
    rows = jsonl_rows(path)
    marks = [(n, l.strip()) for n, l in enumerate(read_lines(labels, "labels"), 1) if l.strip()]
    if len(marks) != len(rows):
        raise DataError("labels", f"{labels}: {len(marks)} labels for the {len(rows)} items of {path}")
    items = []
    for (n, row), (m, mark) in zip(rows, marks):
        if mark not in ("0", "1"):
            raise DataError("labels", f"{labels}:{m}: a label must be 0 or 1, got {mark[:20]!r}")
        items.append(Item(_field(path, n, row.get("goal"), "goal", "data"),
                          (_field(path, n, row.get("sol1"), "sol1", "data"),
                           _field(path, n, row.get("sol2"), "sol2", "data")), int(mark)))
    return items


def read_choices(path) -> list[Item]:
    """A learner's own questions: {"context": str, "choices": [str, ...], "label": int} per line."""
    items = []
    for n, row in jsonl_rows(path):
        context = _field(path, n, row.get("context"), "context", "data")
        choices = row.get("choices")
        if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
            raise DataError("data", f"{path}:{n}: 'choices' must be a list of 2 to {MAX_CHOICES} strings")
        choices = tuple(_field(path, n, c, "choices", "data") for c in choices)
        label = row.get("label")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
            raise DataError("data", f"{path}:{n}: 'label' must be an index into the {len(choices)} choices, got {label!r}")
        items.append(Item(context, choices, label))
    return items
