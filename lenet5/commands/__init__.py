"""CLI subcommands: each module has `register(subparsers)`. Flags several commands share
are defined here once."""
from ..core.architecture import PAPER, VARIANT_CHOICES, Variant, default_output


def add_variant_arguments(parser, defaults=PAPER):
    """--arch, --c3, --pooling, --activation, --output, --inputs: the network's variant
    (default: the paper's, or `defaults`), choices and their meanings read from
    architecture.VARIANT_CHOICES."""
    for name, choices in VARIANT_CHOICES.items():
        meanings = "; ".join(f"{c}: {what}" for c, what in choices.items())
        default = getattr(defaults, name)
        if default != getattr(PAPER, name):
            parser.add_argument(f"--{name}", choices=tuple(choices), default=default,
                                help=f"{meanings} (default {default}; the paper: {getattr(PAPER, name)})")
            continue
        if name == "output":  # (None: the architecture's own, see variant_arguments)
            parser.add_argument("--output", choices=tuple(choices), default=None,
                                help=f"{meanings} (default {default}, the paper's; softmax for "
                                "lenet1 and lenet4, which have 10 output units)")
            continue
        parser.add_argument(f"--{name}", choices=tuple(choices), default=default,
                            help=f"{meanings} (default {default}, the paper's)")


def variant_arguments(args):
    """The variant fields of parsed arguments, as keyword arguments (for TrainConfig)."""
    out = {name: getattr(args, name) for name in VARIANT_CHOICES}
    out["output"] = out["output"] or default_output(out["arch"])
    return out


def variant_from_args(args):
    return Variant(**variant_arguments(args))
