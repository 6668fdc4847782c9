"""Reproduce the paper-era experiments: `python scripts/reproduce.py NAME|all [options]`,
the same as `lenet5 experiment NAME|all` (see `--help`)."""
import sys

from lenet5.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", *sys.argv[1:]]))
