"""`lenet5 audit`: the per-layer parameter/connection table against the paper's figures."""
import json

from ..tools.audit import audit_rows, format_audit
from . import add_variant_arguments, variant_from_args


def register(sub):
    p = sub.add_parser("audit", help="per-layer parameters and connections vs the paper",
                       description="Count LeNet-5's trainable parameters and connections per layer "
                       "from the layer definitions and the C3 table, beside the paper's figures. "
                       "With variant flags, the counts of that variant (the paper's column is shown "
                       "only for the paper's network).")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    add_variant_arguments(p)
    p.set_defaults(func=run)


def run(args):
    variant = variant_from_args(args)
    rows = audit_rows(variant)
    print(json.dumps(rows, indent=2) if args.json else format_audit(rows, variant))
    return 0 if all(r["matches_paper"] is not False for r in rows) else 1
