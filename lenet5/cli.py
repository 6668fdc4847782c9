"""`lenet5` console script: one subcommand per job, each defined next to the code it runs.

Every subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func`. Errors the user can act on (`Lenet5Error`) become one line on stderr and exit 2.
"""
import argparse
import importlib
import sys

from .errors import Lenet5Error

# subcommand modules, in the order `lenet5 --help` lists them
COMMANDS = ("audit", "download", "train", "evaluate", "show", "predict", "export", "bench",
            "experiment", "demo")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="lenet5",
        description="Paper-faithful LeNet-5 (LeCun et al. 1998): train, evaluate, audit, benchmark.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lenet5.commands.{name}").register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except Lenet5Error as e:
        print(f"lenet5: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lenet5: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
