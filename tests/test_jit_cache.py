"""Numba's cache keys a function on its own file; lenet5.core.jit_cache recompiles a function whose
called code changed in another file. Checked with real cached compilation in subprocesses."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

KERNEL = "from numba import njit\n\n\n@njit(cache=True)\ndef k(x):\n    return x + {step}\n"
CALLER = textwrap.dedent("""
    from pathlib import Path

    from numba import njit

    from kernel import k


    @njit(cache=True)
    def f(x):
        return k(x)

    {guard}
""")
GUARD = ("from lenet5.core.jit_cache import flush_if_changed\n"
         "flush_if_changed(globals(), 'kernel.py', 'caller.py', base=Path(__file__).parent)")


def run_caller(folder, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join([str(folder), *sys.path]))
    out = subprocess.run([sys.executable, "-c", "import caller; print(caller.f(1))"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def edit_kernel(folder, step):
    time.sleep(0.01)
    (folder / "kernel.py").write_text(KERNEL.format(step=step))
    stamp = time.time() + 5  # a clearly newer modification time
    os.utime(folder / "kernel.py", (stamp, stamp))


@pytest.mark.slow
def test_a_change_in_a_called_file_recompiles_the_caller(tmp_path):
    results = {}
    for guarded in (False, True):
        folder = tmp_path / ("guarded" if guarded else "plain")
        folder.mkdir()
        (folder / "caller.py").write_text(CALLER.format(guard=GUARD if guarded else ""))
        edit_kernel(folder, 1)
        first = run_caller(folder, tmp_path / f"cache-{guarded}")
        edit_kernel(folder, 2)
        results[guarded] = (first, run_caller(folder, tmp_path / f"cache-{guarded}"))
    assert results[False] == (2, 2)  # Numba alone serves the stale caller: the gap this closes
    assert results[True] == (2, 3)   # with the guard the caller sees the new kernel
