"""CLI subcommands: each module has `register(subparsers)`. Flags several commands share
are defined here once."""
from ..architecture import PAPER, VARIANT_CHOICES, Variant


def add_variant_arguments(parser):
    """--c3, --pooling, --activation, --output: the network's variant (default: the paper's),
    choices and their meanings read from architecture.VARIANT_CHOICES."""
    for name, choices in VARIANT_CHOICES.items():
        meanings = "; ".join(f"{c}: {what}" for c, what in choices.items())
        parser.add_argument(f"--{name}", choices=tuple(choices), default=getattr(PAPER, name),
                            help=f"{meanings} (default {getattr(PAPER, name)}, the paper's)")


def variant_arguments(args):
    """The variant fields of parsed arguments, as keyword arguments (for TrainConfig)."""
    return {name: getattr(args, name) for name in VARIANT_CHOICES}


def variant_from_args(args):
    return Variant(**variant_arguments(args))
