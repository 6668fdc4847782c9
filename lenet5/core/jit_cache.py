"""Keeping Numba's on-disk cache honest across files.

Numba keys a cached function on its own source file (its modification time and size) and its
own bytecode. A function that calls -- or inlines -- jitted code from another file is stored
with that code compiled in, so when only the other file changes (an update of kernels.py, say)
the cache still serves the old machine code, silently. `flush_if_changed` closes that gap: each
module with cached functions calls it once, after defining them, naming the files their code
comes from; when the digest of those files differs from the one recorded beside the cache, the
module's cached functions are flushed (compiled afresh on first use) and the new digest is
recorded.
"""
import hashlib
from pathlib import Path

from numba.core.registry import CPUDispatcher

from ..files import write_text_atomic

PACKAGE = Path(__file__).resolve().parents[1]  # the lenet5 package folder


def sources_digest(paths, base=PACKAGE):
    """SHA-256 over the named files' bytes (paths relative to `base`), in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0" + (Path(base) / path).read_bytes() + b"\0")
    return digest.hexdigest()


def cached_dispatchers(namespace):
    """The jitted functions defined in a module namespace (not imported into it) that keep an
    on-disk cache."""
    return [value for value in namespace.values()
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == namespace.get("__name__")
            and getattr(value, "_cache", None) is not None and hasattr(value._cache, "flush")
            and getattr(value._cache, "_cache_path", None)]


def flush_if_changed(namespace, *sources, base=PACKAGE):
    """Flush the cached functions of `namespace` (a module's globals()) when the files their
    code comes from (`sources`, relative to the package; list the module itself too) changed
    since the cache was written. Returns True when it flushed. Never fails: a cache folder that
    cannot be written leaves Numba's own behaviour."""
    dispatchers = cached_dispatchers(namespace)
    if not dispatchers:
        return False
    digest = sources_digest(sources, base)
    module = namespace.get("__name__", "module").rsplit(".", 1)[-1]
    marker = Path(dispatchers[0]._cache._cache_path) / f"{module}.sources.sha256"
    try:
        if marker.read_text() == digest:
            return False
    except OSError:
        pass
    for dispatcher in dispatchers:
        try:
            dispatcher._cache.flush()
        except OSError:
            return False
    try:
        write_text_atomic(marker, digest)
    except OSError:
        pass
    return True
