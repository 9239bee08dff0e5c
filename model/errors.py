"""Errors about a value the caller chose, named by value, with the parameter it was given as.

The library speaks of values and files ("runs/x exists"); the command line adds its own name for
the parameter (`bpe/cli.py` error_line prints "--out runs/x exists"), and the web server its
field's. One class, so every layer can tell such an error from a broken file.
"""


class OptionError(ValueError):
    """A chosen value that cannot be used. `option` is the parameter's name (a TrainSettings field,
    `model`, `layer`, ...); the message starts with the value itself."""

    def __init__(self, option: str | None, message: str):
        super().__init__(message)
        self.option = option
