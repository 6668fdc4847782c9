"""`lenet5 bench` runs end to end (in its seconds-long --tiny mode) and writes its JSON."""
import json

import pytest

from lenet5.cli import main

KEYS = ("online_sgd", "online_sdlm", "hessian_500", "minibatch_sgd_32", "minibatch_sgd_256",
        "infer_1000", "minibatch_sgd_256_gemm", "infer_1000_gemm")


@pytest.mark.slow
def test_bench_cli_writes_positive_figures(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--tiny", "--json", str(path)]) == 0
    figures = json.loads(path.read_text())
    for key in KEYS:
        assert isinstance(figures[key], float) and figures[key] > 0, key
        assert figures[key + "_min"] <= figures[key] <= figures[key + "_max"], key
    assert figures["paper_protocol_s"] > 0
    assert 0 < figures["latency_forward_us"] < figures["latency_fwd_bwd_us"]
    assert figures["distort"] > 0  # lenet5.distort is built: its rate is measured
    out = capsys.readouterr().out
    assert "online SGD step" in out and "inference, batch 1000" in out


@pytest.mark.slow
def test_bench_reports_each_figure_against_its_ceiling(tmp_path, capsys):
    """The ceiling: FLOP per sample from the connection counts (2 per connection, training
    3x forward) and the matmul rate at 1 and the batch thread count; every figure's fraction is
    its rate over the ceiling of its kind (online/Hessian: 1 thread, training FLOP; mini-batch:
    batch threads, training FLOP; inference: batch threads, forward FLOP)."""
    from lenet5.core.paper import PAPER_TOTAL
    from lenet5.perf.bench import CEILING_OF

    path = tmp_path / "bench.json"
    assert main(["bench", "--tiny", "--json", str(path)]) == 0
    f = json.loads(path.read_text())
    assert f["flop_forward"] == 2 * PAPER_TOTAL[1] and f["flop_training"] == 3 * f["flop_forward"]
    for key in ("matmul_gflops_1t", "matmul_gflops_batch"):
        assert 0 < f[key + "_min"] <= f[key] <= f[key + "_max"], key
    assert f["ceiling_threads"] == f["threads"]
    assert set(CEILING_OF) == set(KEYS)
    for key, (threads, work) in CEILING_OF.items():
        gflops = f["matmul_gflops_1t" if threads == "1" else "matmul_gflops_batch"]
        assert f[key + "_ceiling"] == pytest.approx(gflops * 1e9 / f["flop_" + work]), key
        assert f[key + "_of_ceiling"] == pytest.approx(f[key] / f[key + "_ceiling"]), key
    assert CEILING_OF["infer_1000"] == ("batch", "forward")
    assert CEILING_OF["online_sgd"] == ("1", "training")
    assert CEILING_OF["infer_1000_gemm"] == CEILING_OF["infer_1000"]
    out = capsys.readouterr().out
    assert "numpy matmul GFLOP/s, 1 thread(s)" in out and "681,816 FLOP forward" in out
    assert f"{f['infer_1000_of_ceiling']:.1%}" in out


def test_bench_states_how_busy_the_machine_was():
    from lenet5.perf.bench import load_notes

    base = {"nproc": 2, "threads": 2, "loadavg_start": 3.5, "loadavg_end": 4.25,
            "matmul_gflops_1t": 60.0, "matmul_gflops_batch": 50.0, "matmul_gflops_batch_min": 40.0,
            "matmul_gflops_1t_f64": 30.0, "matmul_gflops_batch_f64": 55.0}
    notes = load_notes(base)
    assert notes[0] == ("load average 3.50 at the start, 4.25 at the end, on 2 CPUs "
                        "(1-minute averages, this benchmark included)")
    assert "2-thread matmul ran no faster than 1 thread" in notes[1] and len(notes) == 2
    quiet = dict(base, matmul_gflops_batch=110.0)
    assert len(load_notes(quiet)) == 1
    assert load_notes(dict(quiet, loadavg_start=None)) == []


def test_the_implied_protocol_hides_each_evaluation_behind_the_next_pass():
    """20 passes of training (SDLM steps and Hessian estimates on one core); the evaluation of
    passes 1-19 runs on the other core beside the next pass and adds only what outlasts it."""
    from lenet5.perf.bench import EVAL, HESSIANS, PASS, implied_protocol

    train = PASS / 15_000 + HESSIANS * 500 / 15_000
    assert implied_protocol(15_000, 15_000, 70_000, 2) == pytest.approx(20 * train + EVAL / 70_000)
    slow = EVAL / 5_000 - train  # one core evaluates at 5,000/s: longer than a pass
    assert slow > 0
    assert implied_protocol(15_000, 15_000, 10_000, 2) == pytest.approx(20 * train + 19 * slow + EVAL / 10_000)


def test_jit_start_snippet_imports_resolve():
    """The subprocess timed for the JIT start imports what it names (its compile is too slow
    to run here: only its import lines)."""
    from lenet5.perf.bench import JIT_SNIPPET

    imports = "\n".join(line for line in JIT_SNIPPET.splitlines() if line.startswith(("import ", "from ")))
    namespace = {}
    exec(imports, namespace)
    assert callable(namespace["engine"].train_online) and hasattr(namespace["LeNet5"], "init")


def test_layer_profile_times_every_layer_of_the_online_step():
    """lenet5.perf.layers: a positive time for each layer kernel and for the whole step, whose
    sum is of the order of the step (neither a kernel skipped nor one timed many times over)."""
    from lenet5.perf.layers import LAYERS, layer_times

    times, whole = layer_times(calls=20, samples=64, repeats=2)
    assert list(times) == [label for label, _ in LAYERS]
    assert all(t > 0 for t in times.values()) and whole > 0
    assert 0.2 * whole < sum(times.values()) < 5 * whole
