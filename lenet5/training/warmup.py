"""Compiling the Numba kernels before the first pass, so that pass 1 reports its own time.

Numba compiles each kernel on its first call and caches the machine code (cache=True), so
only the first run on a machine pays the compilation, about 13 s of CPU; without this, that time
would hide inside pass 1 and make it look slow.
"""
import tempfile
import threading
import time
from dataclasses import replace

NOTICE_AFTER = 1.0  # seconds: loading cached kernels takes less; compiling takes far more
WARMUP_IMAGES = 4


def compile_kernels(config, data, log=print):
    """Train a throwaway copy of the run (same settings, one pass over WARMUP_IMAGES images,
    in a temporary folder), which compiles or loads every kernel the run will use. If that
    takes longer than NOTICE_AFTER it says so while it happens and reports the time.
    Returns the seconds taken."""
    from ..errors import Lenet5Error
    from .interruption import Interrupted
    from .trainer import Trainer

    (train_x, train_y), (test_x, test_y) = data
    tiny = ((train_x[:WARMUP_IMAGES], train_y[:WARMUP_IMAGES]),
            (test_x[:WARMUP_IMAGES], test_y[:WARMUP_IMAGES]))
    # the same kernels (dtype, variant, loss, optimizer, batch size), tiny steps: it must not diverge
    settings = replace(config, epochs=1, train_size=0, distortions=min(config.distortions, 1),
                       lr=1e-6, mu=1e3)
    shown = []

    def notice():
        shown.append(True)
        log("compiling kernels (first run only, cached afterwards) ...")

    timer = threading.Timer(NOTICE_AFTER, notice)
    started = time.perf_counter()
    timer.start()
    try:
        with tempfile.TemporaryDirectory(prefix="lenet5-warmup-") as folder:
            Trainer(settings, tiny, folder, progress=False, log=lambda line: None).run()
    except Interrupted:
        raise Interrupted("interrupted while compiling the kernels, before training started") from None
    except (Lenet5Error, OSError):
        pass  # (e.g. no writable temp folder) the kernels then compile in pass 1; the run is unharmed
    finally:
        timer.cancel()
    seconds = time.perf_counter() - started
    if shown:
        log(f"kernels compiled in {seconds:.1f} s (not counted in pass 1)")
    return seconds
