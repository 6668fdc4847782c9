"""`lenet5 audit`: the per-layer parameter/connection table against the paper's figures."""
import json

from ..audit import audit_rows, format_audit


def register(sub):
    p = sub.add_parser("audit", help="per-layer parameters and connections vs the paper",
                       description="Count LeNet-5's trainable parameters and connections per layer "
                       "from the layer definitions and the C3 table, beside the paper's figures.")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def run(args):
    rows = audit_rows()
    print(json.dumps(rows, indent=2) if args.json else format_audit(rows))
    return 0 if all(r["matches_paper"] for r in rows) else 1
