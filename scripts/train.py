"""Same as `lenet5 train ...`."""
import sys

from lenet5.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
