"""``python -m engine``: the command-line interface."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
