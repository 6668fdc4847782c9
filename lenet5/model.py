"""The LeNet5 model object: parameters, forward pass, loss and gradients, checkpoints."""
import zipfile

import numpy as np

from . import engine
from .architecture import (
    C3_TABLE, KERNEL, LAYER, LAYERS, PAPER_TOTAL, PARAM_SHAPES, PROTOTYPES, full_table,
    table_mask, table_pairs,
)
from .errors import Lenet5Error
from .files import save_npz_atomic

FORMAT_VERSION = 1
LAYER_OUTPUTS = ("input",) + tuple(layer.name for layer in LAYERS)  # keys of LeNet5.layers()
MAP_J = 1.0  # default j of the MAP criterion; see README "Choices the paper left open"
DTYPES = {"float32": np.float32, "float64": np.float64}

C1_PAIRS = table_pairs(LAYER["C1"].table)
C3_PAIRS = table_pairs(C3_TABLE)
C3_UNCONNECTED = ~table_mask(C3_TABLE, LAYER["C3"].in_maps)  # (16, 6) True where no link
# C3's wiring: LeCun's Table I (the paper), or every S2 map into every C3 map (for the
# `connections` experiment). Same storage; "full" simply trains all 96 kernels.
C3_WIRINGS = ("table", "full")
_C3_FULL_PAIRS = table_pairs(full_table(LAYER["C3"].maps, LAYER["C3"].in_maps))

# The model checks its own size where it is defined: free parameters = dense storage minus
# the C3 kernels Table I leaves out, and that must be the paper's 60,000.
N_FREE = engine.N_THETA - int(C3_UNCONNECTED.sum()) * 25
assert N_FREE == sum(layer.trainable for layer in LAYERS) == PAPER_TOTAL[0], N_FREE


def default_prototypes(dtype=np.float32):
    """The 10x84 fixed RBF prototypes: the stylised 7x12 digit bitmaps."""
    from .prototypes import rbf_prototypes

    return rbf_prototypes().astype(dtype)


class LeNet5:
    """LeNet-5 as in LeCun et al. 1998. All trainable parameters live in one flat vector
    `theta`; `params` maps the paper's layer names to views into it (plus the fixed
    prototypes), so editing `net.params[...]` edits the network."""

    def __init__(self, theta, prototypes, c3="table"):
        if c3 not in C3_WIRINGS:
            raise Lenet5Error(f"unknown C3 wiring {c3!r}: choose one of {', '.join(C3_WIRINGS)}")
        self.c3 = c3
        self.c3_pairs = C3_PAIRS if c3 == "table" else _C3_FULL_PAIRS
        theta = np.ascontiguousarray(theta)
        if theta.dtype not in (np.float32, np.float64) or theta.shape != (engine.N_THETA,):
            raise Lenet5Error(f"theta must be float32/float64 of shape ({engine.N_THETA},)")
        self.theta = theta
        self.prototypes = np.ascontiguousarray(prototypes, dtype=theta.dtype)
        self.params = self.views(theta)
        self.params[PROTOTYPES] = self.prototypes

    @property
    def dtype(self):
        return self.theta.dtype

    @staticmethod
    def views(flat):
        """Name -> shaped view into a flat parameter or gradient vector."""
        return {name: flat[a:b].reshape(PARAM_SHAPES[name]) for name, (a, b) in engine.OFFSETS.items()}

    @classmethod
    def init(cls, seed=0, dtype=np.float32, prototypes=None, c3="table"):
        """The paper's initialisation: every weight and bias uniform in [-2.4/F, 2.4/F], F the
        fan-in of the unit it feeds (4 for a subsampling coefficient: its 2x2 block).
        c3="full" wires every S2 map to every C3 map (F = 6 x 25 for every C3 unit)."""
        rng = np.random.default_rng(seed)
        theta = np.zeros(engine.N_THETA, dtype=np.float64)
        params = cls.views(theta)
        for layer in LAYERS:
            if layer.kind == "rbf":
                continue
            first = "coeff" if layer.kind == "subsample" else "weight"
            bound = 2.4 / np.asarray(layer.fan_in, dtype=np.float64)  # one F per output map
            for part in (first, "bias"):
                arr = params[f"{layer.name}.{part}"]
                per_map = bound.reshape((-1,) + (1,) * (arr.ndim - 1))
                arr[...] = rng.uniform(-1.0, 1.0, arr.shape) * per_map
        if c3 == "full":  # drawn after the rest, so every other layer is as with Table I
            bound = 2.4 / (LAYER["C3"].in_maps * KERNEL * KERNEL)
            for name in ("C3.weight", "C3.bias"):
                params[name][...] = rng.uniform(-bound, bound, params[name].shape)
        else:
            params["C3.weight"][C3_UNCONNECTED] = 0.0
        if prototypes is None:
            prototypes = default_prototypes(np.float64)
        return cls(theta.astype(dtype), prototypes, c3)

    # ---------------------------------------------------------------- computing
    def _images(self, x):
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (32, 32):
            raise Lenet5Error(f"expected images of shape (N, 32, 32), got {x.shape}")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def forward(self, x):
        """RBF outputs y (N, 10): squared distances of F6's output to each prototype."""
        x = self._images(x)
        out = np.empty((x.shape[0], 10), dtype=self.dtype)
        engine.forward_batch(x, self.theta, self.prototypes, C1_PAIRS, self.c3_pairs,
                             engine.thread_bounds(x.shape[0]), out)
        return out

    def layers(self, image):
        """Every layer's output for one (32, 32) image, as a dict in the order of the network:
        input (32, 32), C1 (6, 28, 28), S2 (6, 14, 14), C3 (16, 10, 10), S4 (16, 5, 5), C5 (120,),
        F6 (84,), OUT (10,) -- OUT holds the RBF outputs, the same as `forward` gives."""
        x = self._images(image)
        if len(x) != 1:
            raise Lenet5Error(f"layers() takes one image, got {len(x)}")
        acts = engine.forward_layers(x[0], self.theta, self.prototypes, C1_PAIRS, self.c3_pairs)
        out = dict(zip(LAYER_OUTPUTS, (a.copy() for a in acts)))
        out["input"] = out["input"][0]
        return out

    def predict(self, x, batch=2000):
        """Class = argmin of the RBF outputs, computed in batches."""
        x = self._images(x)
        return np.concatenate([self.forward(x[i:i + batch]).argmin(axis=1)
                               for i in range(0, len(x), batch)]) if len(x) else np.empty(0, int)

    def loss_and_gradients(self, x, labels, loss="mse", j=MAP_J):
        """(mean per-sample loss, dict of mean gradients with the names/shapes of params).
        loss="mse": E = y_label (eq. 8); loss="map": E = y_label + log(e^-j + sum_i e^-y_i)."""
        losses, grad = self.losses_and_flat_gradient(x, labels, loss, j)
        grads = self.views(grad)
        grads[PROTOTYPES] = np.zeros_like(self.prototypes)
        return float(losses.mean()), grads

    def losses_and_flat_gradient(self, x, labels, loss="mse", j=MAP_J):
        """Per-sample losses and the mean gradient as one flat vector laid out like theta."""
        loss_kind = loss_code(loss)
        x = self._images(x)
        labels = check_labels(labels, len(x))
        losses = np.empty(len(x), dtype=self.dtype)
        grad = np.empty_like(self.theta)
        engine.loss_gradient_batch(x, labels, self.theta, self.prototypes, C1_PAIRS, self.c3_pairs,
                                   loss_kind, self.dtype.type(j), engine.thread_bounds(len(x)),
                                   losses, grad)
        grad /= len(x)
        return losses, grad

    # ---------------------------------------------------------------- checkpoints
    def arrays(self):
        """Everything a checkpoint holds for the model: the params plus format metadata."""
        out = {name: np.ascontiguousarray(arr) for name, arr in self.params.items()}
        out["meta.format_version"] = np.array(FORMAT_VERSION)
        out["meta.dtype"] = np.array(str(self.dtype))
        if self.c3 != "table":  # absent = Table I, so the paper network's files are unchanged
            out["meta.c3"] = np.array(self.c3)
        return out

    def save(self, path, extra=None):
        """Write one .npz atomically (temp file in the same folder, then rename). `extra`
        holds additional arrays whose names start with 'state.' (training state)."""
        arrays = self.arrays()
        for name, value in (extra or {}).items():
            if not name.startswith("state."):
                raise ValueError(f"extra checkpoint entries must start with 'state.': {name}")
            arrays[name] = np.asarray(value)
        save_npz_atomic(path, arrays)

    @classmethod
    def load(cls, path, with_state=False):
        """Load and validate a checkpoint: exactly the known names and shapes, a known format
        version and dtype, finite values, C3 zero where Table I has no link (unless the
        checkpoint says its C3 is fully connected). Never unpickles."""
        arrays = load_npz(path)
        where = f"checkpoint {path}"
        expected = set(PARAM_SHAPES) | {"meta.format_version", "meta.dtype"}
        missing = sorted(expected - set(arrays))
        unknown = sorted(n for n in set(arrays) - expected - {"meta.c3"} if not n.startswith("state."))
        if missing or unknown:
            raise Lenet5Error(f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
        version = arrays["meta.format_version"]
        if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
            raise Lenet5Error(f"{where}: format version {version!r}, expected {FORMAT_VERSION}")
        dtype_name = str(arrays["meta.dtype"])
        if dtype_name not in DTYPES:
            raise Lenet5Error(f"{where}: dtype {dtype_name!r}, expected float32 or float64")
        dtype = DTYPES[dtype_name]
        theta = np.empty(engine.N_THETA, dtype=dtype)
        params = cls.views(theta)
        for name, shape in PARAM_SHAPES.items():
            arr = arrays[name]
            if arr.shape != shape:
                raise Lenet5Error(f"{where}: {name} has shape {arr.shape}, expected {shape}")
            if arr.dtype.kind != "f":
                raise Lenet5Error(f"{where}: {name} has dtype {arr.dtype}, expected {dtype_name}")
            if not np.all(np.isfinite(arr)):
                raise Lenet5Error(f"{where}: {name} holds NaN or infinite values")
            if name != PROTOTYPES:
                params[name][...] = arr
        c3 = str(arrays["meta.c3"]) if "meta.c3" in arrays else "table"
        if c3 not in C3_WIRINGS:
            raise Lenet5Error(f"{where}: meta.c3 is {c3!r}, expected one of {', '.join(C3_WIRINGS)}")
        if c3 == "table" and np.any(params["C3.weight"][C3_UNCONNECTED] != 0):
            raise Lenet5Error(f"{where}: C3.weight is non-zero where Table I has no connection")
        net = cls(theta, arrays[PROTOTYPES], c3)
        if with_state:
            return net, {n: a for n, a in arrays.items() if n.startswith("state.")}
        return net


def loss_code(loss):
    if loss not in engine.LOSSES:
        raise Lenet5Error(f"unknown loss {loss!r}: choose one of {sorted(engine.LOSSES)}")
    return engine.LOSSES[loss]


def check_labels(labels, n):
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise Lenet5Error(f"expected {n} integer labels, got shape {labels.shape} {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() > 9):
        raise Lenet5Error("labels must be digits 0-9")
    return labels.astype(np.int64)


def load_npz(path):
    """All arrays of an .npz, read with allow_pickle=False; any problem -> Lenet5Error."""
    where = f"checkpoint {path}"
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise Lenet5Error(f"{where}: not a valid .npz (not a zip archive)")
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise Lenet5Error(f"{where}: no such file") from None
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise Lenet5Error(f"{where}: holds a pickled object; refusing to load it") from None
        raise Lenet5Error(f"{where}: not a valid .npz ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise Lenet5Error(f"{where}: not a valid .npz ({e})") from None
