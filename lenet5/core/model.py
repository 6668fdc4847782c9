"""The LeNet5 model object: parameters, forward pass, loss and gradients, saving and loading
(the file format and its checks are in checkpoint_format, the input checks in inputs)."""
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..files import printable, save_npz_atomic
from . import engine
from .architecture import (
    C3_TABLE,
    LAYER,
    LAYERS,
    PAPER,
    PROTOTYPES,
    SUBSAMPLING_PARAMS,
    Variant,
    layers,
    param_names,
    param_shapes,
    table_mask,
    target_codes,
)
from .checkpoint_format import check_contents, checkpoint_variant, load_npz
from .inputs import check_images, check_labels
from .paper import PAPER_TOTAL

FORMAT_VERSION = 1
MAP_J = 1.0  # default j of the MAP criterion; see README "Choices the paper left open"
DTYPES = {"float32": np.float32, "float64": np.float64}
INIT_SCALES = ("paper", "sqrt", "lush")  # the initial scales LeNet5.init offers
LUSH_COEFF = 0.5  # Lush's initial subsampling coefficient


def init_bound(fan_in, scale):
    """Per-unit bound of the uniform initial draw: 2.4/F (paper), 1/sqrt(F) (sqrt, lush)."""
    fan_in = np.asarray(fan_in, dtype=np.float64)
    return 2.4 / fan_in if scale == "paper" else 1.0 / np.sqrt(fan_in)


C3_UNCONNECTED = ~table_mask(C3_TABLE, LAYER["C3"].in_maps)  # (16, 6) True where no link
# where each layer's output sits in the engine's buffers (x0 ... x6, y), by layer name


def c3_unconnected(variant):
    """(C3 maps, S2 maps) mask, True where the variant's C3 has no kernel."""
    c3 = next(layer for layer in layers(variant) if layer.name == "C3")
    return ~table_mask(variant.c3_table, c3.in_maps)


def free_parameters(variant=PAPER):
    """Trainable parameters a network of `variant` really has, counted from its storage:
    its arrays, less the C3 kernels its table leaves out and the fixed average pooling."""
    names = [n for n in param_names(variant) if n != PROTOTYPES]
    if variant.pooling == "average":
        names = [n for n in names if n not in SUBSAMPLING_PARAMS]
    shapes = param_shapes(variant.arch)
    return sum(int(np.prod(shapes[n])) for n in names) - int(c3_unconnected(variant).sum()) * 25


# The model checks its own size where it is defined: the paper's 60,000, from the storage and
# from the structure alike.
assert free_parameters() == sum(layer.trainable for layer in LAYERS) == PAPER_TOTAL[0]


REFERENCE = "lenet5-seed0.npz"


def reference_checkpoint():
    """The checkpoint shipped inside the package (the default-seed paper-protocol run)."""
    return resources.files("lenet5") / "reference" / REFERENCE


def default_prototypes(dtype=np.float32, variant=PAPER):
    """The fixed prototypes of the output layer: the 10x84 stylised 7x12 digit bitmaps, or the
    Lush demo's 10x10 +-1 target codes (output targets)."""
    from .prototypes import rbf_prototypes

    return (target_codes() if variant.output == "targets" else rbf_prototypes()).astype(dtype)


class LeNet5:
    """LeNet-5 as in LeCun et al. 1998. All trainable parameters live in one flat vector
    `theta`; `params` maps the paper's layer names to views into it (plus the fixed
    prototypes), so editing `net.params[...]` edits the network."""

    def __init__(self, theta, prototypes, variant=PAPER):
        if not isinstance(variant, Variant):
            raise Lenet5Error(f"variant must be a lenet5.core.architecture.Variant, got {variant!r}")
        self.variant = variant
        theta = np.ascontiguousarray(theta)
        n_theta = engine.layout(variant.arch)[1]
        if theta.dtype not in (np.float32, np.float64) or theta.shape != (n_theta,):
            raise Lenet5Error(f"theta must be float32/float64 of shape ({n_theta},)")
        self.theta = theta
        self.prototypes = np.ascontiguousarray(prototypes, dtype=theta.dtype)
        self.params = {n: v for n, v in self.views(theta, variant).items() if n in param_names(variant)}
        if PROTOTYPES in param_names(variant):
            self.params[PROTOTYPES] = self.prototypes
        self._specs = {}

    def spec(self, loss="map", j=MAP_J):
        """The engine's record for this network and criterion (see lenet5.core.engine)."""
        check_loss(self.variant, loss)
        key = (loss, float(j))
        if key not in self._specs:
            self._specs[key] = engine.make_spec(self.variant, self.prototypes, loss, j)
        return self._specs[key]

    @property
    def default_loss(self):
        return default_loss(self.variant)

    def fixed_mask(self):
        """Boolean mask over theta: True for the entries training never changes (arrays this
        variant does not use, the fixed 2x2 average, C3 kernels its table leaves out)."""
        fixed = np.ones_like(self.theta, dtype=bool)
        views = self.views(fixed, self.variant)
        for name in param_names(self.variant):
            if name != PROTOTYPES:
                views[name][...] = False
        if self.variant.pooling == "average":
            for name in SUBSAMPLING_PARAMS:
                views[name][...] = True
        views["C3.weight"][c3_unconnected(self.variant)] = True
        return fixed

    @property
    def dtype(self):
        return self.theta.dtype

    @staticmethod
    def views(flat, variant=PAPER):
        """Name -> shaped view into a flat parameter or gradient vector of `variant`'s layout."""
        shapes, (offsets, _) = param_shapes(variant.arch), engine.layout(variant.arch)
        return {name: flat[slice(*offsets[name])].reshape(shapes[name]) for name in offsets
                if name in shapes}

    @classmethod
    def init(cls, seed=0, dtype=np.float32, prototypes=None, variant=PAPER, scale="paper"):
        """The paper's initialisation: every weight and bias uniform in [-2.4/F, 2.4/F], F the
        fan-in of the unit it feeds (4 for a subsampling coefficient: its 2x2 block).
        scale (INIT_SCALES): "paper" that; "sqrt" every parameter uniform
        in +-1/sqrt(F) (Lush/EBLearn's bound); "lush" weights +-1/sqrt(F), biases 0 and
        subsampling coefficients 0.5 (Lush's defaults). Every scale makes the same random draws
        (only the bound differs, then "lush" sets its constants), so seeds correspond.
        Variants draw the paper's layers first, in the same order, so every layer they share
        starts as in the paper's network; then: c3="full" redraws C3 with F = 6 x 25;
        pooling="average" sets S2/S4 to the fixed 1/4 and 0; pooling="max" leaves them unused
        (zero); output="softmax" draws its 10x84 weights and biases with F = 84.
        LeNet-1 and LeNet-4 draw their own layers in order, their softmax output included."""
        rng = np.random.default_rng(seed)
        theta = np.zeros(engine.layout(variant.arch)[1], dtype=np.float64)
        params = cls.views(theta, variant)
        own = replace(variant, c3="table", pooling="trainable")  # the architecture as published

        if scale not in INIT_SCALES:
            raise Lenet5Error(f"unknown init scale {scale!r}: choose one of {', '.join(INIT_SCALES)}")

        def draw(layer, parts):
            bound = init_bound(layer.fan_in, scale)  # one F per output map
            for part in parts:
                arr = params[f"{layer.name}.{part}"]
                per_map = bound.reshape((-1,) + (1,) * (arr.ndim - 1))
                arr[...] = rng.uniform(-1.0, 1.0, arr.shape) * per_map
                if scale == "lush" and part != "weight":
                    arr[...] = LUSH_COEFF if part == "coeff" else 0.0

        for layer in LAYERS if variant.arch == "lenet5" else layers(own):
            if layer.kind not in ("rbf", "targets"):
                draw(layer, ("coeff" if layer.kind == "subsample" else "weight", "bias"))
        params["C3.weight"][c3_unconnected(own)] = 0.0
        by_name = {layer.name: layer for layer in layers(variant)}
        if variant.c3 == "full":
            draw(by_name["C3"], ("weight", "bias"))
        for name in SUBSAMPLING_PARAMS:
            if variant.pooling != "trainable":
                params[name][...] = 0.25 if variant.pooling == "average" and name.endswith("coeff") else 0.0
        if variant.output == "softmax" and variant.arch == "lenet5":
            draw(by_name["OUT"], ("weight", "bias"))
        if prototypes is None:
            prototypes = default_prototypes(np.float64, variant)
        return cls(theta.astype(dtype), prototypes, variant)

    # ---------------------------------------------------------------- computing
    def _images(self, x):
        """`x` as a C-contiguous (N, 32, 32) array of the network's dtype, or a Lenet5Error
        saying what is wrong with it (see check_images)."""
        x = check_images(x)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def forward(self, x):
        """RBF outputs y (N, 10): squared distances of F6's output to each prototype."""
        return self.forward_checked(self._images(x))

    def forward_checked(self, x, threads=None, shared_loop=False):
        """forward() of images already checked and laid out as `_images` returns them (the
        trainer checks its sets once, then evaluates them after every pass), on `threads`
        threads (default: all of Numba's); shared_loop: see engine.forward_batch."""
        out = np.empty((x.shape[0], 10), dtype=self.dtype)
        engine.forward_batch(x, self.theta, self.spec(self.default_loss),
                             engine.thread_bounds(x.shape[0], threads), out, shared_loop)
        return out

    def layers(self, image):
        """Every layer's output for one (32, 32) image, as a dict in the order of the network:
        input (32, 32), C1 (6, 28, 28), S2 (6, 14, 14), C3 (16, 10, 10), S4 (16, 5, 5), C5 (120,),
        F6 (84,), OUT (10,) -- OUT holds the RBF outputs, the same as `forward` gives.
        LeNet-1 and LeNet-4: their own layers (LeNet-1's input is its 28x28 field). The input is
        on the printed levels (-0.1 .. 1.175) even where the network standardises it before C1
        (inputs="unit"), so every network's input is drawn alike."""
        x = self._images(image)
        if len(x) != 1:
            raise Lenet5Error(f"layers() takes one image, got {len(x)}")
        acts = engine.forward_layers(x[0], self.theta, self.spec(self.default_loss))
        names = ("input",) + tuple(layer.name for layer in layers(self.variant))
        out = {name: getattr(acts, name.lower()).copy() for name in names}  # (engine.Layers fields)
        out["input"] = out["input"][0]
        a, b = engine.input_affine(self.variant, np.float64)
        if (a, b) != (1.0, 0.0):  # x0 = a x + b -> x
            out["input"] = ((out["input"] - b) / a).astype(self.dtype)
        return out

    def predict(self, x, batch=2000):
        """Class = argmin of the outputs (RBF distances, or -log p), computed in batches."""
        x = self._images(x)
        return np.concatenate([self.forward(x[i:i + batch]).argmin(axis=1)
                               for i in range(0, len(x), batch)]) if len(x) else np.empty(0, int)

    def loss_and_gradients(self, x, labels, loss=None, j=MAP_J):
        """(mean per-sample loss, dict of mean gradients with the names/shapes of params).
        loss="mse": E = y_label (eq. 8); loss="map": E = y_label + log(e^-j + sum_i e^-y_i);
        loss="ce" (softmax output): E = y_label = -log p_label. None: the output's own
        criterion (RBF: map, softmax: ce)."""
        losses, grad = self.losses_and_flat_gradient(x, labels, loss, j)
        grads = {name: view for name, view in self.views(grad, self.variant).items() if name in self.params}
        if PROTOTYPES in self.params:
            grads[PROTOTYPES] = np.zeros_like(self.prototypes)
        return float(losses.mean()), grads

    def losses_and_flat_gradient(self, x, labels, loss=None, j=MAP_J):
        """Per-sample losses and the mean gradient as one flat vector laid out like theta."""
        spec = self.spec(loss or self.default_loss, j)
        x = self._images(x)
        labels = check_labels(labels, len(x))
        losses = np.empty(len(x), dtype=self.dtype)
        grad = np.empty_like(self.theta)
        engine.loss_gradient_batch(x, labels, self.theta, spec, engine.thread_bounds(len(x)), losses, grad)
        grad /= len(x)
        return losses, grad

    # ---------------------------------------------------------------- checkpoints
    def arrays(self):
        """Everything a checkpoint holds for the model: the params plus format metadata."""
        out = {name: np.ascontiguousarray(arr) for name, arr in self.params.items()}
        out["meta.format_version"] = np.array(FORMAT_VERSION)
        out["meta.dtype"] = np.array(str(self.dtype))
        if not self.variant.is_paper:  # absent = the paper's, so its files are unchanged
            out["meta.variant"] = np.array(self.variant.to_json())
        return out

    def save(self, path, extra=None):
        """Write one .npz atomically (temp file in the same folder, then rename). `extra`
        holds additional arrays whose names start with 'state.' (training state)."""
        arrays = self.arrays()
        for name, value in (extra or {}).items():
            if not name.startswith("state."):
                raise ValueError(f"extra checkpoint entries must start with 'state.': {name}")
            arrays[name] = np.asarray(value)
        if Path(path).is_dir():
            raise Lenet5Error(f"cannot save to {path}: it is a folder; give a file name such as "
                              f"{Path(path) / 'net.npz'}")
        try:
            save_npz_atomic(path, arrays)
        except Lenet5Error:  # (files.WriteError: a special file, a missing folder, ...)
            raise
        except OSError as e:
            raise Lenet5Error(f"cannot write {path}: {e.strerror or e}") from None

    @classmethod
    def load(cls, path, with_state=False):
        """Load and validate a checkpoint: its variant (meta.variant; absent = the paper's),
        exactly that variant's names and shapes, a known format version and dtype, finite
        values, C3 zero where Table I has no link (when the variant uses the table). Never
        unpickles."""
        arrays = load_npz(path)
        where = f"checkpoint {printable(path)}"
        variant = checkpoint_variant(arrays, where)
        n_theta = engine.layout(variant.arch)[1]
        check_contents(arrays, where, n_theta, param_shapes(variant.arch).get(PROTOTYPES))  # state.*, prototypes
        names = param_names(variant)
        expected = set(names) | {"meta.format_version", "meta.dtype"}
        meta = {"meta.variant", "meta.c3"}
        missing = sorted(expected - set(arrays))
        unknown = sorted(n for n in set(arrays) - expected - meta if not n.startswith("state."))
        if missing or unknown:
            raise Lenet5Error(f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
        version = arrays["meta.format_version"]
        if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
            raise Lenet5Error(f"{where}: format version {version!r}, expected {FORMAT_VERSION}")
        dtype_name = str(arrays["meta.dtype"])
        if dtype_name not in DTYPES:
            raise Lenet5Error(f"{where}: dtype {dtype_name!r}, expected float32 or float64")
        dtype = DTYPES[dtype_name]
        theta = np.zeros(n_theta, dtype=dtype)
        params = cls.views(theta, variant)
        for name in names:
            shape, arr = param_shapes(variant.arch)[name], arrays[name]
            if arr.shape != shape:
                raise Lenet5Error(f"{where}: {name} has shape {arr.shape}, expected {shape}")
            if arr.dtype.kind != "f":
                raise Lenet5Error(f"{where}: {name} has dtype {arr.dtype}, expected {dtype_name}")
            if not np.all(np.isfinite(arr)):
                raise Lenet5Error(f"{where}: {name} holds NaN or infinite values")
            if name != PROTOTYPES:
                params[name][...] = arr
        if np.any(params["C3.weight"][c3_unconnected(variant)] != 0):
            table = "Table I" if variant.arch in ("lenet5", "lush") else f"{variant.arch}'s C3 table"
            raise Lenet5Error(f"{where}: C3.weight is non-zero where {table} has no connection")
        prototypes = arrays[PROTOTYPES] if PROTOTYPES in names else default_prototypes(dtype, variant)
        net = cls(theta, prototypes, variant)
        if with_state:
            return net, {n: a for n, a in arrays.items() if n.startswith("state.")}
        return net


def default_loss(variant):
    """The criterion an output is trained with unless told otherwise: MAP (eq. 9) for the RBF
    output, cross-entropy for the softmax output, the squared distance to the target code for
    the Lush demo's targets."""
    return {"softmax": "ce", "targets": "mse"}.get(variant.output, "map")


def check_loss(variant, loss):
    """Lenet5Error unless `loss` is a criterion for this variant's output."""
    allowed = ("ce",) if variant.output == "softmax" else ("map", "mse")
    if loss not in allowed:
        raise Lenet5Error(f"loss {loss!r} does not go with the {variant.output} output: choose "
                          f"{' or '.join(allowed)}")
