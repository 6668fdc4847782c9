"""The audit reproduces the paper's figures from the structure; the CLI prints them."""
import json
import subprocess
import sys

import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.core import engine
from lenet5.core.architecture import C3_TABLE, LAYER
from lenet5.core.paper import PAPER_FIGURES, PAPER_TOTAL
from lenet5.tools.audit import audit_rows


def test_audit_equals_the_papers_figures():
    rows = {r["layer"]: r for r in audit_rows()}
    for name, (params, conns) in PAPER_FIGURES.items():
        assert (rows[name]["parameters"], rows[name]["connections"]) == (params, conns), name
    assert (rows["total"]["parameters"], rows["total"]["connections"]) == PAPER_TOTAL == (60_000, 340_908)
    assert all(r["matches_paper"] for r in rows.values())


def test_c3_table_is_table_one():
    assert len(C3_TABLE) == 16
    assert [len(t) for t in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    assert sum(len(t) for t in C3_TABLE) == 60  # 60 kernels of 25 weights + 16 biases = 1,516
    assert LAYER["C3"].trainable == 1_516


def test_audit_counts_equal_the_models_free_parameters():
    """Counting the live arrays (connected entries only) gives the same 60,000."""
    net = LeNet5.init(seed=0)
    free = sum(a.size for n, a in net.params.items() if n not in ("C3.weight", "OUT.prototypes"))
    free += int(np.count_nonzero(net.params["C3.weight"]))
    assert free == PAPER_TOTAL[0]
    assert engine.N_THETA == free + 36 * 25 + 850  # 36 unconnected C3 kernels stored as zeros,
    # and the softmax output's weights, unused by the RBF output


@pytest.mark.slow
def test_audit_cli_text_and_json():
    out = subprocess.run([sys.executable, "-m", "lenet5", "audit"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "340,908" in out.stdout and "60,000" in out.stdout and "MISMATCH" not in out.stdout
    assert out.stdout.count("\u2713") == 8
    out = subprocess.run([sys.executable, "-m", "lenet5", "audit", "--json"], capture_output=True, text=True)
    rows = json.loads(out.stdout)
    assert rows[-1] == {**rows[-1], "parameters": 60_000, "connections": 340_908, "matches_paper": True}


def test_lenet1_and_lenet4_counts_beside_the_papers():
    from lenet5.core.architecture import Variant
    from lenet5.core.paper import PAPER_ARCH_TOTALS

    def totals(arch):
        rows = audit_rows(Variant(arch=arch, output="softmax"))
        return rows[-1], {r["layer"]: (r["parameters"], r["connections"]) for r in rows}

    total, layers = totals("lenet1")  # LeCun et al. 1990's exact figures for this network
    assert (total["parameters"], total["connections"]) == (2_578, 98_442)
    assert layers["C3"] == (20 * 25 + 12, 20 * 25 * 64 + 12 * 64)  # 20 kernels (inferred)
    assert total["matches_paper"] and (total["paper_parameters"], total["paper_connections"]) == (2_600, 100_000)
    total, layers = totals("lenet4")
    assert (total["parameters"], total["connections"]) == (50_698, 262_306)
    assert layers["S2"] == (16, 8 * 14 * 14 * 5) and layers["C5"] == (48_120, 48_120)
    assert not total["matches_paper"]  # 260,000 connections fit, 17,000 parameters cannot
    assert PAPER_ARCH_TOTALS["lenet4"] == (17_000, 260_000)
    for arch in ("lenet1", "lenet4"):  # the model's storage holds exactly the audited parameters
        net = LeNet5.init(seed=0, variant=Variant(arch=arch, output="softmax"))
        free = sum(a.size for n, a in net.params.items() if n != "C3.weight")
        assert free + np.count_nonzero(net.params["C3.weight"]) == totals(arch)[0]["parameters"]


@pytest.mark.slow
def test_audit_cli_arch():
    out = subprocess.run([sys.executable, "-m", "lenet5", "audit", "--arch", "lenet1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "2,578" in out.stdout and "98,442" in out.stdout and "2,600/100,000" in out.stdout
    out = subprocess.run([sys.executable, "-m", "lenet5", "audit", "--arch", "lenet4"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "17,000/260,000" in out.stdout and "MISMATCH" in out.stdout
    out = subprocess.run([sys.executable, "-m", "lenet5", "audit", "--arch", "lenet1", "--output", "rbf"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "use output softmax" in out.stderr
