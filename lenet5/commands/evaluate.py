"""`lenet5 evaluate`: test error, confusion matrix and misclassified images of a checkpoint."""
import json

import numpy as np

from ..core.model import REFERENCE, LeNet5, reference_checkpoint


def register(sub):
    p = sub.add_parser("evaluate", help="test error, confusion matrix, misclassified images",
                       description="Evaluate a checkpoint on the 10,000 MNIST test images. Without "
                       "--checkpoint, the reference checkpoint shipped in the package is used.")
    p.add_argument("--checkpoint", help=f"checkpoint .npz (default: the shipped {REFERENCE})")
    p.add_argument("--data-dir", help="MNIST folder (default $LENET5_DATA_DIR or ./data/mnist)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def evaluate(net, images, labels):
    predicted = net.predict(images)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    wrong = np.flatnonzero(predicted != labels)
    return {"test_error_pct": 100.0 * len(wrong) / len(labels), "errors": int(len(wrong)),
            "confusion": confusion.tolist(), "misclassified": wrong.tolist(),
            "predicted": predicted[wrong].tolist(), "true": labels[wrong].tolist()}


def run(args):
    from ..data.mnist import load_mnist

    path = args.checkpoint or reference_checkpoint()
    net = LeNet5.load(path)
    images, labels = load_mnist("test", data_dir=args.data_dir)
    result = evaluate(net, images.astype(net.dtype), labels)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"checkpoint {path}")
    print(f"test error {result['test_error_pct']:.2f}% ({result['errors']} of {len(labels):,})")
    print("confusion matrix (rows: true digit, columns: predicted)")
    print("      " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(result["confusion"]):
        print(f"{d:>6}" + "".join(f"{v:>6}" for v in row))
    pairs = [f"{i}({t}->{p})" for i, t, p in zip(result["misclassified"], result["true"], result["predicted"])]
    print("misclassified test images, index(true->predicted):")
    print(" ".join(pairs))
    return 0
