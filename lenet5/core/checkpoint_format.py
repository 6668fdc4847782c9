"""What a checkpoint file may hold beyond the parameters, checked before it is trusted.

* The archive: no encrypted entry; at most MAX_ENTRIES .npy entries, each at most MAX_ENTRY_BYTES once
  decompressed and all together at most MAX_TOTAL_BYTES, read from the zip directory before
  any entry is decompressed; each entry's .npy header must describe exactly the bytes the
  directory lists and no Python objects (so nothing is ever unpickled).
* The training state (`state.*`, written by lenet5.training.trainer.Trainer.state): only the entries of
  STATE_ENTRIES, each of its kind, consistent with each other.
* The RBF prototypes, when stored: 10x84 of +-1 (the paper's fixed 7x12 bitmaps).
"""
import json
import math
import zipfile

import numpy as np

from ..errors import Lenet5Error
from ..files import UnreadableFile, open_regular, printable
from .architecture import PAPER, PARAM_SHAPES, PROTOTYPES, Variant

MAX_ENTRIES = 64
MAX_ENTRY_BYTES = 16 << 20  # the largest real entry, state.eta in float64, is ~0.5 MB
MAX_TOTAL_BYTES = 64 << 20
# name -> what it holds (the message when it does not)
STATE_ENTRIES = {
    "state.config": "a JSON object of training settings",
    "state.history": "a JSON list of one object per finished pass",
    "state.epoch": "the pass in progress, an integer >= 1",
    "state.position": "samples of that pass already done, an integer >= 0",
    "state.eta": "per-parameter step sizes, a finite non-negative float vector",
    "state.hessian": "SDLM's last Hessian estimate, kept between estimates: a finite non-negative float vector",
    "state.epoch_losses": "the pass's per-sample losses, a finite float vector",
    "state.epoch_seconds": "seconds spent in the pass so far, a finite float >= 0",
    "state.initial_loss": "the untrained network's mean loss, a finite float",
    "state.pending_row": "a JSON object: the metrics of the pass just saved, awaiting its errors",
}


# ---------------------------------------------------------------- the archive

def check_archive(infos, where):
    """Refuse a zip directory (list of ZipInfo) that is not a plausible checkpoint."""
    if len(infos) > MAX_ENTRIES:
        raise Lenet5Error(f"{where}: {len(infos)} entries; a checkpoint has at most {MAX_ENTRIES}")
    names = [info.filename for info in infos]
    odd = sorted({n for n in names if not n.endswith(".npy") or names.count(n) > 1})
    if odd:
        raise Lenet5Error(f"{where}: entries that are not single .npy arrays: {odd[:5]}")
    for info in infos:
        if info.flag_bits & 0x1:  # (zipfile would ask for a password)
            raise Lenet5Error(f"{where}: entry {info.filename} is encrypted; a checkpoint never is")
        if info.file_size > MAX_ENTRY_BYTES:
            raise Lenet5Error(f"{where}: entry {info.filename} is {info.file_size:,} bytes "
                              f"decompressed; no checkpoint entry exceeds {MAX_ENTRY_BYTES:,}")
    total = sum(info.file_size for info in infos)
    if total > MAX_TOTAL_BYTES:
        raise Lenet5Error(f"{where}: {total:,} bytes decompressed; a checkpoint holds at most "
                          f"{MAX_TOTAL_BYTES:,}")


def check_entry_header(f, info, where):
    """Read the .npy header of the open entry `f`; refuse object arrays and headers whose
    array size differs from what the zip directory lists for the entry."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise Lenet5Error(f"{where}: entry {info.filename} has .npy version {version}")
    if dtype.hasobject:
        raise Lenet5Error(f"{where}: holds a pickled object; refusing to load it")
    data_bytes = math.prod(shape) * dtype.itemsize
    if f.tell() + data_bytes != info.file_size:
        raise Lenet5Error(f"{where}: entry {info.filename} claims {data_bytes:,} bytes of data but "
                          f"holds {info.file_size - f.tell():,}")


# ---------------------------------------------------------------- the contents

def check_contents(arrays, where, n_theta, prototypes_shape=PARAM_SHAPES[PROTOTYPES]):
    """The state entries and the prototypes of a checkpoint's arrays (name -> array)."""
    if PROTOTYPES in arrays:
        check_prototypes(arrays[PROTOTYPES], where, prototypes_shape)
    state = {name: a for name, a in arrays.items() if name.startswith("state.")}
    unknown = sorted(set(state) - set(STATE_ENTRIES))
    if unknown:
        raise Lenet5Error(f"{where}: unknown training-state entries {unknown}")
    for name, arr in state.items():
        if not _STATE_CHECKS[name](arr, n_theta):
            raise Lenet5Error(f"{where}: {name} must be {STATE_ENTRIES[name]}")
    _check_consistent(state, where)


def check_prototypes(arr, where, shape=PARAM_SHAPES[PROTOTYPES]):
    """The fixed output prototypes: the paper's 10x84 bitmaps (or the Lush demo's 10x10
    target codes), +1 and -1 only."""
    if arr.shape != shape or arr.dtype.kind != "f" or not np.all(np.abs(arr) == 1):
        what = "the paper's fixed bitmaps" if shape == PARAM_SHAPES[PROTOTYPES] else "fixed target codes"
        raise Lenet5Error(f"{where}: {PROTOTYPES} must be {shape} of +1 and -1 ({what})")


def _json(arr, kind):
    if arr.shape != () or arr.dtype.kind != "U":
        return None
    try:
        value = json.loads(str(arr))
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def _int_scalar(arr, low):
    return arr.shape == () and arr.dtype.kind in "iu" and int(arr) >= low


def _float_scalar(arr, low=-math.inf):
    return arr.shape == () and arr.dtype.kind in "fiu" and math.isfinite(float(arr)) and float(arr) >= low


def _float_vector(arr, length=None, low=-math.inf):
    return (arr.ndim == 1 and arr.dtype.kind == "f" and (length is None or len(arr) == length)
            and bool(np.all(np.isfinite(arr))) and bool(np.all(arr >= low)))


def _history(arr, n_theta):
    rows = _json(arr, list)
    return rows is not None and all(isinstance(r, dict) for r in rows)


_STATE_CHECKS = {
    "state.config": lambda a, n: _json(a, dict) is not None,
    "state.history": _history,
    "state.epoch": lambda a, n: _int_scalar(a, 1),
    "state.position": lambda a, n: _int_scalar(a, 0),
    "state.eta": lambda a, n: _float_vector(a, n, low=0.0),
    "state.hessian": lambda a, n: _float_vector(a, n, low=0.0),
    "state.epoch_losses": lambda a, n: _float_vector(a),
    "state.epoch_seconds": lambda a, n: _float_scalar(a, 0.0),
    "state.initial_loss": lambda a, n: _float_scalar(a),
    "state.pending_row": lambda a, n: _json(a, dict) is not None,
}
assert set(_STATE_CHECKS) == set(STATE_ENTRIES)


def _check_consistent(state, where):
    """The entries agree: the pass in progress follows the history; a checkpoint saved in
    the middle of a pass has that pass's step sizes, losses and time."""
    position = int(state["state.position"]) if "state.position" in state else 0
    pending = "state.pending_row" in state  # (saved at the end of a pass, before its evaluation)
    if pending and (position or "state.epoch" not in state
                    or json.loads(str(state["state.pending_row"])).get("epoch") != int(state["state.epoch"]) - 1):
        raise Lenet5Error(f"{where}: state.pending_row must be the pass before state.epoch, saved at "
                          "the start of a pass")
    if "state.history" in state and "state.epoch" in state:
        done, epoch = len(json.loads(str(state["state.history"]))) + pending, int(state["state.epoch"])
        if epoch != done + 1:
            raise Lenet5Error(f"{where}: state.epoch is {epoch} but state.history lists {done} "
                              "finished passes")
    if position:
        missing = [n for n in ("state.eta", "state.epoch_losses", "state.epoch_seconds") if n not in state]
        if missing:
            raise Lenet5Error(f"{where}: saved in the middle of a pass but {missing} missing")
        if position > len(state["state.epoch_losses"]):
            raise Lenet5Error(f"{where}: state.position {position} is past the end of the pass "
                              f"({len(state['state.epoch_losses'])} samples)")


def load_npz(path):
    """All arrays of an .npz, read with allow_pickle=False after the zip directory and every
    entry's header are checked against size limits (check_archive, check_entry_header), so a small file
    cannot unpack into gigabytes; any problem -> Lenet5Error."""
    where = f"checkpoint {printable(path)}"
    try:
        f = open_regular(path)  # (a FIFO is refused, never waited on)
    except UnreadableFile as e:
        raise Lenet5Error(f"{where}: {e}") from None
    try:
        with f:
            if f.read(4) != b"PK\x03\x04":
                raise Lenet5Error(f"{where}: not a valid .npz (not a zip archive)")
            f.seek(0)
            return read_npz(f, where)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise Lenet5Error(f"{where}: holds a pickled object; refusing to load it") from None
        raise Lenet5Error(f"{where}: not a valid .npz ({e})") from None
    except RuntimeError as e:  # zipfile: an encrypted entry ("password required")
        raise Lenet5Error(f"{where}: not a valid .npz ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as e:
        raise Lenet5Error(f"{where}: not a valid .npz ({e})") from None


def read_npz(f, where):
    """The arrays of the open .npz `f`, each entry's header checked before it is read."""
    arrays = {}
    with zipfile.ZipFile(f) as archive:
        infos = archive.infolist()
        check_archive(infos, where)
        for info in infos:
            with archive.open(info) as entry:
                check_entry_header(entry, info, where)
            with archive.open(info) as entry:
                arrays[info.filename[:-4]] = np.lib.format.read_array(entry, allow_pickle=False)
    return arrays


def checkpoint_variant(arrays, where):
    """The Variant a checkpoint records: meta.variant (a JSON object of strings), or the older
    meta.c3 entry (a string), or none at all for the paper's network."""
    for name in ("meta.variant", "meta.c3", "meta.dtype"):
        if name in arrays and (arrays[name].shape != () or arrays[name].dtype.kind != "U"):
            raise Lenet5Error(f"{where}: {name} must be a text entry, got {arrays[name].dtype} "
                              f"of shape {arrays[name].shape}")
    try:
        if "meta.variant" in arrays:
            text = str(arrays["meta.variant"])
            data = json.loads(text)
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise Lenet5Error(f"meta.variant must be a JSON object of text choices, got {text[:80]!r}")
            return Variant.from_json(text)
        if "meta.c3" in arrays:
            return Variant(c3=str(arrays["meta.c3"]))
    except ValueError:
        raise Lenet5Error(f"{where}: meta.variant is not JSON") from None
    except Lenet5Error as e:
        raise Lenet5Error(f"{where}: {e}") from None
    return PAPER
