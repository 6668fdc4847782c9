"""Per-layer parameter and connection counts, computed from `architecture.LAYERS` (sizes and
the C3 table), set beside the paper's figures."""
from .architecture import LAYERS, PAPER_FIGURES, PAPER_TOTAL


def audit_rows():
    """One dict per layer plus a 'total' row: our counts, the paper's, and whether they match."""
    rows = []
    for layer in LAYERS:
        paper_params, paper_conn = PAPER_FIGURES[layer.name]
        rows.append({
            "layer": layer.name,
            "maps": layer.maps,
            "size": f"{layer.size}x{layer.size}",
            "parameters": layer.trainable,
            "connections": layer.connections,
            "paper_parameters": paper_params,
            "paper_connections": paper_conn,
        })
    rows.append({
        "layer": "total", "maps": None, "size": None,
        "parameters": sum(r["parameters"] for r in rows),
        "connections": sum(r["connections"] for r in rows),
        "paper_parameters": PAPER_TOTAL[0], "paper_connections": PAPER_TOTAL[1],
    })
    for r in rows:
        r["matches_paper"] = (r["parameters"], r["connections"]) == (
            r["paper_parameters"], r["paper_connections"])
    return rows


def format_audit(rows):
    """The audit as a fixed-width text table."""
    head = f"{'layer':<6} {'maps x size':>12} {'parameters':>11} {'connections':>12}   {'paper':>18}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = f"{r['maps']}@{r['size']}" if r["maps"] else ""
        paper = f"{r['paper_parameters']:,}/{r['paper_connections']:,}"
        mark = "\u2713" if r["matches_paper"] else "\u2717 MISMATCH"
        lines.append(f"{r['layer']:<6} {shape:>12} {r['parameters']:>11,} {r['connections']:>12,}"
                     f"   {paper:>18}  {mark}")
    return "\n".join(lines)
