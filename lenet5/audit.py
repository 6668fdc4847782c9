"""Per-layer parameter and connection counts, computed from the layer definitions
(`architecture.layers(variant)`: sizes, the C3 table, the variant's choices) and, for the
paper's network, set beside the paper's figures."""
from .architecture import PAPER, PAPER_FIGURES, PAPER_TOTAL, layers


def audit_rows(variant=PAPER):
    """One dict per layer plus a 'total' row: our counts and, for the paper's configuration,
    the paper's figures and whether they match (None for other variants)."""
    paper = variant.is_paper
    rows = [{"layer": layer.name, "maps": layer.maps, "size": f"{layer.size}x{layer.size}",
             "parameters": layer.trainable, "connections": layer.connections,
             "paper": PAPER_FIGURES[layer.name] if paper else None}
            for layer in layers(variant)]
    rows.append({"layer": "total", "maps": None, "size": None,
                 "parameters": sum(r["parameters"] for r in rows),
                 "connections": sum(r["connections"] for r in rows),
                 "paper": PAPER_TOTAL if paper else None})
    for r in rows:
        figures = r.pop("paper")
        r["paper_parameters"], r["paper_connections"] = figures or (None, None)
        r["matches_paper"] = None if figures is None else (r["parameters"], r["connections"]) == figures
    return rows


def format_audit(rows, variant=PAPER):
    """The audit as a fixed-width text table (the paper's column only for the paper's network)."""
    paper = rows[0]["paper_parameters"] is not None
    head = f"{'layer':<6} {'maps x size':>12} {'parameters':>11} {'connections':>12}"
    head += f"   {'paper':>18}  ok" if paper else ""
    lines = [] if paper else [f"variant: {variant.describe()} (the paper's figures are for its own network)"]
    lines += [head, "-" * len(head)]
    for r in rows:
        shape = f"{r['maps']}@{r['size']}" if r["maps"] else ""
        line = f"{r['layer']:<6} {shape:>12} {r['parameters']:>11,} {r['connections']:>12,}"
        if paper:
            figures = f"{r['paper_parameters']:,}/{r['paper_connections']:,}"
            line += f"   {figures:>18}  " + ("\u2713" if r["matches_paper"] else "\u2717 MISMATCH")
        lines.append(line)
    return "\n".join(lines)
