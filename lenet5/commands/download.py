"""`lenet5 download`: fetch and verify the four MNIST files."""
import signal
import sys
import time

from ..data.download import DEFAULT_DEADLINE, MIRROR_ENV, MIRRORS, ensure_mnist
from ..data.mnist import DATA_DIR_ENV, default_data_dir


def register(sub):
    p = sub.add_parser(
        "download", help="fetch and verify the MNIST files",
        description="Make sure the four MNIST .gz files are in the data folder with the expected "
        "(decompressed) SHA-256. Files already present and intact are kept without touching "
        "the network; missing or corrupt ones are fetched from the first mirror that serves "
        f"them intact: --mirror entries, then ${MIRROR_ENV} (comma-separated URLs or "
        f"folders), then {', '.join(MIRRORS)}.")
    p.add_argument("--dir", metavar="DIR",
                   help=f"data folder (default ${DATA_DIR_ENV} or ./data/mnist)")
    p.add_argument("--mirror", metavar="URL_OR_DIR", action="append", default=[],
                   help="a URL or a local folder holding the .gz files, tried before the "
                   "default mirrors; repeat for several")
    p.add_argument("--no-default-mirrors", action="store_true",
                   help="try only --mirror and $" + MIRROR_ENV + ", never the internet mirrors")
    p.add_argument("--timeout", type=float, nargs=2, metavar=("CONNECT", "READ"), default=(10.0, 30.0),
                   help="HTTP connect and read timeouts in seconds (default 10 30)")
    p.add_argument("--deadline", type=float, metavar="SECONDS", default=DEFAULT_DEADLINE,
                   help=f"the longest one file may take from one mirror, retries included "
                   f"(default {DEFAULT_DEADLINE:g}); a server too slow for it is given up on")
    p.add_argument("--quiet", action="store_true", help="no progress counter")
    p.set_defaults(func=run)


def run(args):
    data_dir = args.dir or default_data_dir()
    started = time.perf_counter()
    fetched = []

    def report(status):
        if status.fetched_from is None:
            print(f"{status.path}: present, verified ({status.seconds:.2f}s)")
            return
        fetched.append(status.name)
        why = f" (replacing a corrupt copy: {status.replaced})" if status.replaced else ""
        print(f"{status.path}: fetched from {status.fetched_from}, verified "
              f"({status.seconds:.2f}s){why}")

    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # the temp file is removed on the way out
    try:
        ensure_mnist(data_dir, mirrors=args.mirror, progress=not args.quiet, timeout=tuple(args.timeout),
                     include_defaults=not args.no_default_mirrors, on_file=report, deadline=args.deadline)
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = f"{len(fetched)} fetched" if fetched else "nothing fetched, all present and verified"
    print(f"MNIST in {data_dir}: {summary}; {time.perf_counter() - started:.2f}s")
    return 0


def _exit_on_sigterm(signum, frame):
    """SIGTERM as an exception, so the download in progress removes its temp file."""
    print("lenet5: download stopped (SIGTERM)", file=sys.stderr)
    sys.exit(128 + signum)
