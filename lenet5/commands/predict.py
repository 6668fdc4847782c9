"""`lenet5 predict PATH...`: classify your own digit images."""
import json
import sys

from ..core.model import REFERENCE, reference_checkpoint


def register(sub):
    p = sub.add_parser(
        "predict", help="classify your own digit images (PNG, JPEG, BMP, PGM)",
        description="Classify image files of handwritten digits, one or several per call. Each image "
        "is made into the network's input the way MNIST was made: greyscale; background polarity "
        "detected (dark ink on light paper or the reverse); cropped to the ink; scaled so the longer "
        "side is 20 pixels keeping the aspect ratio, with anti-aliasing; centred by centre of mass in "
        "a 28x28 field; padded to 32x32 and mapped to -0.1 (background) .. 1.175 (ink). Prints the "
        "digit, the ten RBF distances and 'confident' or 'reject' by the threshold for 0.5% test "
        "error of `lenet5 experiment rejection`. A file that cannot be read or holds no ink gets "
        "one line naming it and the reason; the others are still classified; the exit code is 2 "
        "if any file failed. Needs Pillow: pip install -e \".[images]\".")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files (PNG, JPEG, BMP, PGM, ...)")
    p.add_argument("--checkpoint", help=f"checkpoint .npz (default: the shipped {REFERENCE})")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per file, one per line (a failed file: {file, error})")
    p.add_argument("--data-dir", help="MNIST folder, to compute the rejection threshold of a checkpoint "
                   "that has no stored one (default $LENET5_DATA_DIR or ./data/mnist)")
    p.set_defaults(func=run)


def run(args):
    from ..core.model import LeNet5
    from ..tools.predict import Failure, classify_files
    from ..tools.rejection import no_threshold_reason, rejection_threshold

    path = args.checkpoint or reference_checkpoint()
    net = LeNet5.load(path)
    threshold = rejection_threshold(path, args.data_dir)
    if threshold is None:
        print(f"lenet5: note: {no_threshold_reason(path, args.data_dir)}", file=sys.stderr)
    failed = 0
    for result in classify_files(net, args.paths, threshold):
        failed += isinstance(result, Failure)
        if args.json:
            print(json.dumps(result.as_json()))
        elif isinstance(result, Failure):
            print(f"lenet5: error: {result.as_line()}", file=sys.stderr)
        else:
            print(result.as_line())
    return 2 if failed else 0
