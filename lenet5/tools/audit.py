"""Per-layer parameter and connection counts, computed from the layer definitions
(`architecture.layers(variant)`: sizes, the C3 table, the variant's choices) and, for the
paper's network, set beside the paper's figures. For LeNet-1 and LeNet-4 the paper gives only
totals, "about" so many: they match when within ABOUT of ours."""
from ..core.architecture import PAPER, Variant, layers
from ..core.paper import PAPER_ARCH_TOTALS, PAPER_FIGURES, PAPER_TOTAL

ABOUT = 0.05  # "about 2,600": within 5%


def audit_rows(variant=PAPER):
    """One dict per layer plus a 'total' row: our counts and, for the paper's configuration,
    the paper's figures and whether they match (None for other variants)."""
    paper = variant.graph.is_paper  # (standardised inputs change no count)
    published = Variant(arch=variant.arch, output=variant.output) == variant.graph  # as in the paper
    rows = [{"layer": layer.name, "maps": layer.maps, "size": f"{layer.size}x{layer.size}",
             "parameters": layer.trainable, "connections": layer.connections,
             "paper": PAPER_FIGURES[layer.name] if paper else None}
            for layer in layers(variant)]
    rows.append({"layer": "total", "maps": None, "size": None,
                 "parameters": sum(r["parameters"] for r in rows),
                 "connections": sum(r["connections"] for r in rows),
                 "paper": PAPER_TOTAL if paper else None})
    about = variant.arch in PAPER_ARCH_TOTALS and published
    if about:
        rows[-1]["paper"] = PAPER_ARCH_TOTALS[variant.arch]
    for r in rows:
        figures = r.pop("paper")
        r["paper_parameters"], r["paper_connections"] = figures or (None, None)
        ours = (r["parameters"], r["connections"])
        if figures is None:
            r["matches_paper"] = None
        elif about:
            r["matches_paper"] = all(abs(a - b) <= ABOUT * b for a, b in zip(ours, figures))
        else:
            r["matches_paper"] = ours == figures
    return rows


def format_audit(rows, variant=PAPER):
    """The audit as a fixed-width text table (the paper's column only for the paper's network)."""
    paper = rows[-1]["paper_parameters"] is not None
    head = f"{'layer':<6} {'maps x size':>12} {'parameters':>11} {'connections':>12}"
    head += f"   {'paper':>18}  ok" if paper else ""
    lines = [] if variant.is_paper else [
        f"variant: {variant.describe()}" + ("" if paper else " (the paper's figures are for its own network)")]
    lines += [head, "-" * len(head)]
    for r in rows:
        shape = f"{r['maps']}@{r['size']}" if r["maps"] else ""
        line = f"{r['layer']:<6} {shape:>12} {r['parameters']:>11,} {r['connections']:>12,}"
        if paper and r["paper_parameters"] is not None:
            figures = f"{r['paper_parameters']:,}/{r['paper_connections']:,}"
            line += f"   {figures:>18}  " + ("\u2713" if r["matches_paper"] else "\u2717 MISMATCH")
        lines.append(line)
    if variant.arch in ARCH_NOTES:
        lines.append(ARCH_NOTES[variant.arch])
    return "\n".join(lines)


ARCH_NOTES = {
    "lenet1": "paper (III-C.7): about 2,600 free parameters and 100,000 multiply-adds (LeCun et al. "
              "1990 give 2,578 and 98,442 for this network); C3's 20 kernels are inferred from them",
    "lenet4": "paper (III-C.7): about 17,000 free parameters and 260,000 connections. The connections "
              "fit (C3 reading 3 of the 8 S2 maps, inferred), the parameters cannot: a fully connected "
              "layer of 120 units on 16 maps of 5x5 alone has 120 x 401 = 48,120",
    "lush": "LeCun's own LeNet-5 demo in Lush (gblearn2's net-lenet5): the printed layers up to C5, "
            "then 10 squashed output units where F6 stands, compared with +-1 target codes (OUT: "
            "fixed, no parameters); the paper does not describe it (lenet5 experiment lush trains it)",
}
