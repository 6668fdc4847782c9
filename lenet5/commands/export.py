"""`lenet5 export --onnx FILE`: the trained network as an ONNX model."""
from ..core.model import REFERENCE, reference_checkpoint


def register(sub):
    p = sub.add_parser(
        "export", help="write a checkpoint as an ONNX model (for onnxruntime and other runtimes)",
        description="Export a checkpoint to ONNX: input 'image' float32 (N, 1, 32, 32), preprocessed "
        "as for training (background -0.1, ink 1.175; see `lenet5 predict`), outputs 'distances' "
        "(N, 10), the outputs of LeNet5.forward (RBF distances, smaller = closer; -log p for a "
        "softmax-output variant), and 'digit' (N,), their argmin. Standard operators only (Conv, "
        "Tanh, Mul, Gemm, Sub, ReduceSum, ArgMin). "
        "Needs the onnx package: pip install -e \".[onnx]\".")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--checkpoint", help=f"checkpoint .npz (default: the shipped {REFERENCE})")
    p.set_defaults(func=run)


def run(args):
    from ..core.model import LeNet5
    from ..files import printable
    from ..tools.export_onnx import export

    path = args.checkpoint or reference_checkpoint()
    size = export(LeNet5.load(path), args.onnx)
    print(f"wrote {printable(args.onnx)} ({size / 1024:.0f} KB) from {path}")
    return 0
