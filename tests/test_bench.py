"""`lenet5 bench` runs end to end (in its seconds-long --tiny mode) and writes its JSON."""
import json

from lenet5.cli import main

KEYS = ("online_sgd", "online_sdlm", "hessian_500", "minibatch_sgd_32", "minibatch_sgd_256",
        "infer_1000")


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
