"""Run the `sensimix` command line as `python -m sensimix_hf`."""

import sys

from .cli import main


if __name__ == "__main__":
    sys.exit(main())
