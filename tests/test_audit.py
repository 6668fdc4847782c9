"""The audit reproduces the paper's figures from the structure; the CLI prints them."""
import json
import subprocess
import sys

import numpy as np

from lenet5 import LeNet5, engine
from lenet5.architecture import C3_TABLE, LAYER, PAPER_FIGURES, PAPER_TOTAL
from lenet5.audit import audit_rows


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


def test_audit_cli_text_and_json():
    out = subprocess.run([sys.executable, "-m", "lenet5", "audit"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "340,908" in out.stdout and "60,000" in out.stdout and "MISMATCH" not in out.stdout
    assert out.stdout.count("\u2713") == 8
    out = subprocess.run([sys.executable, "-m", "lenet5", "audit", "--json"], capture_output=True, text=True)
    rows = json.loads(out.stdout)
    assert rows[-1] == {**rows[-1], "parameters": 60_000, "connections": 340_908, "matches_paper": True}
