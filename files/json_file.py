"""Reading a JSON file that may be hostile: bounded in size, every failure one error naming the file."""
import json


class JSONFileError(ValueError):
    """A JSON file we cannot read: missing, too large or malformed (the message names the file)."""


def read_json(path, limit: int):
    """A JSON file of at most `limit` bytes, parsed; JSONFileError naming the file on any problem."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise JSONFileError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > limit:
        raise JSONFileError(f"{path}: larger than {limit >> 20} MB")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise JSONFileError(f"{path}: not valid JSON ({str(e)[:100]})") from None
