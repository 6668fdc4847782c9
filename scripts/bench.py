"""Same as `lenet5 bench ...`: the engine's throughput (see lenet5/bench.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from lenet5.perf.bench import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
