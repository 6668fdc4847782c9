"""`lenet5 demo`: a local web page to draw a digit on and watch every layer respond."""
import sys

from ..errors import Lenet5Error


def register(sub):
    p = sub.add_parser("demo", help="draw a digit in the browser and watch every layer respond",
                       description="Start a local web server with a page to draw a digit on: it shows "
                       "the predicted digit, the ten RBF distances, every layer's maps and whether the "
                       "answer would be rejected. Also serves a JSON API (POST /api/classify; see the "
                       "README). Stop it with Ctrl-C.")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every "
                   "interface, which lets other machines use the page)")
    p.add_argument("--checkpoint", help="checkpoint .npz (default: the shipped reference network)")
    p.add_argument("--data-dir", help="MNIST folder for the 'random digit' button (default "
                   "$LENET5_DATA_DIR or ./data/mnist; without the test files, ten shipped digits are used)")
    p.set_defaults(func=run)


def run(args):
    from ..core.model import reference_checkpoint
    from ..data.mnist import default_data_dir
    from ..tools.demo.classify import Classifier
    from ..tools.demo.samples import digit_source
    from ..tools.demo.server import make_server
    from ..tools.rejection import no_threshold_reason

    if not 0 <= args.port <= 65535:
        raise Lenet5Error(f"--port must be 0..65535, got {args.port}")
    classifier = Classifier.from_checkpoint(args.checkpoint or reference_checkpoint(), args.data_dir)
    digits = digit_source(args.data_dir or default_data_dir())
    try:
        server = make_server(classifier, digits, args.host, args.port)
    except OSError as e:
        raise Lenet5Error(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    threshold = classifier.threshold
    print(f"lenet5 demo: {classifier.name}; random digits from the {digits.description} ({len(digits):,}); "
          + (f"reject when the top-2 gap < {threshold.gap:.4f}" if threshold
             else no_threshold_reason(args.checkpoint or reference_checkpoint(), args.data_dir)))
    if server.exposed:
        print(f"lenet5 demo: warning: {server.exposed}", file=sys.stderr)
    print(f"lenet5 demo: serving on {server.url}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("lenet5 demo: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
