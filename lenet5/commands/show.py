"""`lenet5 show`: one digit going through the network, drawn layer by layer (a PNG)."""
from pathlib import Path

from ..core.model import REFERENCE, reference_checkpoint

DEFAULT_OUT = "lenet5-show.png"


def register(sub):
    p = sub.add_parser(
        "show", help="draw one digit going through the network, layer by layer (PNG)",
        description="Draw one figure of a digit going through the network, in the spirit of the "
        "paper's Fig. 4: the 32x32 input; the maps of C1, S2, C3 and S4 (one grey scale per layer, "
        "-1.7159 .. 1.7159); C5's 120 outputs; F6's 84 outputs as a 7x12 bitmap beside the prototypes "
        "of the winner and the runner-up; the ten RBF distances; the prediction, the top-2 gap and "
        "whether the rejection threshold for 0.5% test error would reject it. Default: MNIST test "
        f"image 0 through the shipped network, written to {DEFAULT_OUT}. Needs matplotlib: "
        "pip install -e \".[plots]\" (and Pillow for --image: \".[images]\").")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, metavar="N",
                       help="MNIST test image N, 0..9999 (default 0)")
    which.add_argument("--image", metavar="PATH",
                       help="your own image file, preprocessed as by `lenet5 predict`")
    p.add_argument("--checkpoint", help=f"checkpoint .npz (default: the shipped {REFERENCE})")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="FILE.png",
                   help=f"the PNG to write (default {DEFAULT_OUT})")
    p.add_argument("--data-dir", help="MNIST folder for --index (default $LENET5_DATA_DIR or ./data/mnist)")
    p.set_defaults(func=run)


def run(args):
    from ..core.model import LeNet5
    from ..errors import Lenet5Error
    from ..files import printable
    from ..tools.rejection import rejection_threshold
    from ..tools.show import draw, pyplot

    pyplot()  # fail on a missing extra before any work
    path = args.checkpoint or reference_checkpoint()
    net = LeNet5.load(path)
    label = None
    if args.image:
        from ..tools.predict import input_from_file

        try:
            image = input_from_file(args.image, command="lenet5 show --image")
        except Lenet5Error as e:
            raise Lenet5Error(f"{printable(args.image)}: {e}") from None
        caption = f"{args.image}, preprocessed as by lenet5 predict"
    else:
        from ..data.mnist import load_mnist

        index = 0 if args.index is None else args.index
        images, labels = load_mnist("test", data_dir=args.data_dir)
        if not 0 <= index < len(images):
            raise Lenet5Error(f"--index {index} is out of range: test images are 0..{len(images) - 1}")
        image, label = images[index], int(labels[index])
        caption = f"MNIST test image {index}"
    caption += f"\nnetwork {Path(str(path)).name}"
    shown = draw(net, image, args.out, caption, label, rejection_threshold(path, args.data_dir))
    print(f"wrote {printable(args.out)}: predicted {shown['digit']} (runner-up {shown['runner_up']}, top-2 gap "
          f"{shown['gap']:.2f}, {shown['verdict']})" + (f", true {label}" if label is not None else ""))
    return 0
