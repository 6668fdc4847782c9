"""The one error type the CLI turns into a one-line message and exit code 2."""


class Lenet5Error(Exception):
    """Bad input or a failed run that the user can act on (corrupt file, wrong checkpoint, NaN)."""
