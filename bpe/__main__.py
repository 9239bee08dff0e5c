"""`python -m bpe ...`: see bpe/cli.py."""
import sys

from .cli import main

sys.exit(main())
