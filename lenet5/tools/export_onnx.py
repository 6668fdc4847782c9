"""A checkpoint as an ONNX model (the `onnx` package, optional `[onnx]` extra), so the trained
network runs in onnxruntime or any other ONNX runtime next to other models.

The graph computes what `LeNet5.forward` computes, written out of standard operators:

    input "image" float32 (N, 1, 32, 32), preprocessed as for training (-0.1 .. 1.175)
    C1     Conv 6x1x5x5 + bias                         -> f
    S2     Conv 6x1x2x2 stride 2, group 6: every kernel entry = S2.coeff[m], bias S2.bias[m]
           (the paper's trainable subsampling: coefficient times the 2x2 sum, plus bias) -> f
    C3     Conv 16x6x5x5 + bias; the kernels Table I leaves out are exactly zero -> f
    S4     as S2 with 16 maps                          -> f
    C5     Conv 120x16x5x5 + bias (5x5 maps: one number each), Flatten -> f
    F6     Gemm 84x120 + bias                          -> f
    RBF    "distances" (N, 10): ReduceSum over j of (F6_j - prototype_kj)^2 (Sub, Mul, ReduceSum)
    "digit" (N,) int64: ArgMin of the distances
    f      the scaled tanh 1.7159 tanh(2a/3): Mul, Tanh, Mul

Variants export when their layers are standard operators too: c3=full (all 96 kernels),
pooling=average (the same Conv, coefficients 1/4 and biases 0) or max (MaxPool, no squashing),
activation tanh / sigmoid / relu (Tanh / Sigmoid / Relu), output=softmax ("distances" are then
-log p: Gemm, LogSoftmax, Neg), inputs=unit (Mul, Add before C1: the image standardised by the
training set's mean and standard deviation). Anything else is refused by name (`unsupported`).
"""
from dataclasses import fields, is_dataclass

import numpy as np

from ..core.architecture import C3_TABLE, LAYER, TANH_A, TANH_S, table_mask
from ..core.engine import input_affine
from ..errors import Lenet5Error

OPSET = 17
# variant field -> the choices this exporter writes out (the allow-list)
EXPORTABLE = {
    "c3": ("table", "full"),
    "pooling": ("trainable", "average", "max"),
    "activation": ("scaled-tanh", "tanh", "sigmoid", "relu"),
    "output": ("rbf", "softmax"),
    "inputs": ("paper", "unit"),
}
NEEDS_ONNX = 'lenet5 export needs the onnx package: pip install -e ".[onnx]"'


def choices(net):
    """field -> choice of a network's variant (a network without `variant` has only c3)."""
    variant = getattr(net, "variant", None)
    if variant is None:
        return {"c3": getattr(net, "c3", "table")}
    if not is_dataclass(variant):
        raise Lenet5Error(f"cannot read the network's variant {variant!r}")
    return {f.name: getattr(variant, f.name) for f in fields(variant)}


def unsupported(net):
    """'field=choice' for every choice of the network this exporter cannot write, or []."""
    variant = getattr(net, "variant", None)
    default = type(variant)() if is_dataclass(variant) else None
    bad = []
    for name, value in choices(net).items():
        if name in EXPORTABLE:
            if value not in EXPORTABLE[name]:
                bad.append(f"{name}={value}")
        elif default is None or value != getattr(default, name):  # a choice added after this exporter
            bad.append(f"{name}={value}")
    return bad


def build_model(net, name="lenet5"):
    """The onnx.ModelProto of a loaded LeNet5 (float32 weights)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise Lenet5Error(NEEDS_ONNX) from None
    bad = unsupported(net)
    if bad:
        supported = "; ".join(f"{k} {'/'.join(v)}" for k, v in EXPORTABLE.items())
        raise Lenet5Error(f"cannot export this checkpoint to ONNX: {', '.join(bad)} is not supported "
                          f"(supported: {supported})")
    variant = choices(net)
    p = {k: np.asarray(v, dtype=np.float32) for k, v in net.params.items()}
    nodes, inits = [], []

    def const(key, array, dtype=np.float32):
        if key not in {t.name for t in inits}:  # (the activation's constants are shared)
            inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), key))
        return key

    def op(kind, inputs, out, **attrs):
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def squash(x, layer):
        """f(a): the variant's activation."""
        act = variant.get("activation", "scaled-tanh")
        if act == "scaled-tanh":  # 1.7159 tanh(2a/3)
            t = op("Tanh", [op("Mul", [x, const("S", np.float32(TANH_S))], f"{layer}.Sa")], f"{layer}.tanh")
            return op("Mul", [t, const("A", np.float32(TANH_A))], f"{layer}.f")
        return op({"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}[act], [x], f"{layer}.f")

    def conv(x, layer, weight):
        w = const(f"{layer}.weight", weight)
        return squash(op("Conv", [x, w, const(f"{layer}.bias", p[f"{layer}.bias"])], f"{layer}.a"), layer)

    def subsample(x, layer):
        if variant.get("pooling", "trainable") == "max":  # 2x2 max, no squashing
            return op("MaxPool", [x], f"{layer}.f", kernel_shape=[2, 2], strides=[2, 2])
        maps = LAYER[layer].maps  # coeff[m] * (sum of the 2x2 block) + bias[m], one map at a time
        kernel = np.broadcast_to(p[f"{layer}.coeff"].reshape(maps, 1, 1, 1), (maps, 1, 2, 2))
        a = op("Conv", [x, const(f"{layer}.kernel", kernel), const(f"{layer}.bias", p[f"{layer}.bias"])],
               f"{layer}.a", strides=[2, 2], group=maps)
        return squash(a, layer)

    c3 = p["C3.weight"]
    if variant.get("c3", "table") == "table":  # exactly zero where Table I has no connection
        c3 = np.where(table_mask(C3_TABLE, LAYER["C3"].in_maps)[:, :, None, None], c3, np.float32(0))
    x = "image"
    if variant.get("inputs", "paper") == "unit":  # x0 = a x + b, (x - mean) / std of the training set
        a, b = input_affine(net.variant, np.float32)
        x = op("Add", [op("Mul", [x, const("input.scale", a)], "input.ax"), const("input.shift", b)], "input.x0")
    x = conv(x, "C1", p["C1.weight"])
    x = subsample(x, "S2")
    x = conv(x, "C3", c3)
    x = subsample(x, "S4")
    x = op("Flatten", [conv(x, "C5", p["C5.weight"])], "C5.flat")
    x = op("Gemm", [x, const("F6.weight", p["F6.weight"]), const("F6.bias", p["F6.bias"])], "F6.a", transB=1)
    x = squash(x, "F6")
    if variant.get("output", "rbf") == "rbf":  # y_k = sum_j (x_j - P_kj)^2
        diff = op("Sub", [op("Unsqueeze", [x, const("axis1", [1], np.int64)], "F6.col"),
                          const("OUT.prototypes", p["OUT.prototypes"])], "OUT.diff")
        op("ReduceSum", [op("Mul", [diff, diff], "OUT.sq"), const("axis2", [2], np.int64)],
           "distances", keepdims=0)
    else:  # y = -log softmax(W x + b)
        z = op("Gemm", [x, const("OUT.weight", p["OUT.weight"]), const("OUT.bias", p["OUT.bias"])],
               "OUT.z", transB=1)
        op("Neg", [op("LogSoftmax", [z], "OUT.logp", axis=1)], "distances")
    op("ArgMin", ["distances"], "digit", axis=1, keepdims=0)

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 32, 32])],
        [helper.make_tensor_value_info("distances", TensorProto.FLOAT, ["N", 10]),
         helper.make_tensor_value_info("digit", TensorProto.INT64, ["N"])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="lenet5", doc_string=__doc__.split("\n\n")[0])
    onnx.checker.check_model(model, full_check=True)
    return model


def export(net, path):
    """Write the ONNX model of `net` to `path` atomically; returns its size in bytes."""
    from ..files import write_bytes_atomic

    data = build_model(net).SerializeToString()
    write_bytes_atomic(path, data)
    return len(data)
