"""Boosting (lenet5.baselines.boosting): the filtering of a pattern stream into a training set, the
committee's prediction, the reproducible stream of new distorted patterns, and a tiny
end-to-end boosted fig9 run."""
import json

import numpy as np
import pytest

from lenet5.baselines import boosting
from lenet5.cli import main
from lenet5.core.architecture import Variant
from lenet5.core.model import LeNet5

LENET4 = Variant(arch="lenet4", output="softmax")


def category_stream(categories, batch):
    for start in range(0, len(categories), batch):
        yield categories[start:start + batch]


def first_positions(categories, category, count):
    """Brute force: the stream positions of the first `count` patterns of `category`."""
    found = []
    for position, c in enumerate(categories):
        if c == category and len(found) < count:
            found.append(position)
    return found


@pytest.mark.parametrize("batch", [1, 7, 1000, 100_000])
def test_take_first_gives_the_exact_mix(batch):
    rng = np.random.default_rng(5)
    # a stream where one pattern in 20 is wrong (like a good net 1), the rest right
    categories = np.where(rng.random(50_000) < 0.05, boosting.WRONG, boosting.RIGHT)
    taken, examined, counts = boosting.take_first(category_stream(categories, batch),
                                                  {boosting.RIGHT: 300, boosting.WRONG: 300}, limit=10**9)
    assert len(taken[boosting.RIGHT]) == len(taken[boosting.WRONG]) == 300
    for c in (boosting.RIGHT, boosting.WRONG):
        assert np.all(categories[taken[c]] == c)
        assert taken[c].tolist() == first_positions(categories, c, 300)
    # the stream was read exactly up to the 300th wrong pattern (the rarer kind), and no further
    assert examined == first_positions(categories, boosting.WRONG, 300)[-1] + 1
    assert counts == {boosting.WRONG: 300, boosting.RIGHT: examined - 300}


def test_take_first_stops_at_the_limit_when_a_kind_is_scarce():
    categories = np.full(10_000, boosting.SKIP)
    categories[[3, 50, 4_000, 9_000]] = boosting.DISAGREE
    taken, examined, counts = boosting.take_first(category_stream(categories, 64), {boosting.DISAGREE: 10},
                                                  limit=5_000)
    assert taken[boosting.DISAGREE].tolist() == [3, 50, 4_000]
    assert examined == 5_000 and counts == {boosting.SKIP: 4_997, boosting.DISAGREE: 3}


@pytest.mark.slow
def test_mixed_set_is_half_right_half_wrong_on_a_real_stream(mnist):
    (train_x, train_y), _ = mnist
    stream = boosting.PatternStream(train_x[:500], train_y[:500], seed=3, stream=boosting.NET2_STREAM,
                                    block=256)

    class WrongOnSevens:  # "net 1": right except on every 7, which it calls a 1
        def predict(self, images, batch=None):
            labels = stream_labels.pop(0)
            return np.where(labels == 7, 1, labels)

    stream_labels = [stream.block(b)[1] for b in range(40)]
    positions, summary = boosting.mixed_set(WrongOnSevens(), stream, size=100, limit=10_000)
    images, labels = stream.patterns(positions)
    assert summary["right"] == summary["wrong"] == 50 and len(positions) == 100
    assert np.sum(labels == 7) == 50  # exactly the 50 wrong ones are the sevens
    # the positions regenerate the very patterns the filter saw
    b = positions[0] // 256
    block_images, block_labels = stream.block(b)
    assert np.array_equal(images[0], block_images[positions[0] % 256])
    assert labels[0] == block_labels[positions[0] % 256]
    # another stream (net 3's) draws other patterns
    other = boosting.PatternStream(train_x[:500], train_y[:500], seed=3, stream=boosting.NET3_STREAM, block=256)
    assert not np.array_equal(other.block(0)[0], stream.block(0)[0])


@pytest.mark.slow
def test_committee_is_the_argmax_of_the_summed_outputs(mnist):
    (_, _), (test_x, test_y) = mnist
    images = test_x[:50]
    nets = [LeNet5.init(seed=s, variant=LENET4) for s in range(3)]
    rng = np.random.default_rng(0)
    for net in nets:  # spread the outputs out, so that the nets' votes differ
        net.theta[:] = rng.normal(0, 0.3, net.theta.shape).astype(net.theta.dtype)
    # independently: each net's pre-softmax scores z = W x + b from its last hidden layer (C5),
    # then softmax and log-softmax in numpy
    probabilities, log_probabilities, scores_z = 0.0, 0.0, 0.0
    for net in nets:
        c5 = np.array([net.layers(image)["C5"] for image in images], dtype=np.float64)
        z = c5 @ net.params["OUT.weight"].astype(np.float64).T + net.params["OUT.bias"]
        log_p = z - z.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        probabilities = probabilities + np.exp(log_p)
        log_probabilities = log_probabilities + log_p
        scores_z = scores_z + z
    assert np.array_equal(boosting.committee_predict(nets, images), probabilities.argmax(1))
    assert np.array_equal(boosting.committee_predict(nets, images, "log"), log_probabilities.argmax(1))
    assert np.array_equal(log_probabilities.argmax(1), scores_z.argmax(1))  # = summed pre-softmax scores
    scores = boosting.committee_scores(nets, images)
    np.testing.assert_allclose(scores.sum(1), 3.0, rtol=1e-4)  # three distributions added
    single = [net.predict(images) for net in nets]
    assert not (np.array_equal(single[0], single[1]) and np.array_equal(single[1], single[2]))


@pytest.fixture
def out(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("LENET5_DATA_DIR", str(mnist_dir))
    return tmp_path


def run_fig9(out, *extra):
    code = main(["experiment", "fig9", "--tiny", "--processes", "1", "--results", str(out / "results"),
                 "--runs", str(out / "runs"), *extra])
    assert code == 0
    return json.loads((out / "results" / "fig9" / "results.json").read_text())


@pytest.mark.slow
def test_fig9_boosted_tiny_and_only(out, capsys):
    from lenet5.experiments.fig9 import GROUPS, TINY_SET_SIZE

    # --only keeps the other rows from an earlier run: refused (before any training) without one
    assert main(["experiment", "fig9", "--tiny", "--only", "boosted", "--results", str(out / "results"),
                 "--runs", str(out / "runs")]) != 0
    assert "without --only first" in capsys.readouterr().err and not (out / "runs").exists()
    first = run_fig9(out)
    result = run_fig9(out, "--only", "boosted")
    rows = {r["classifier"]: r for r in result["rows"]}
    boosted = rows["[dist] boosted LeNet-4"]
    run = result["data"]["boosted-seed0"]
    assert boosted["test_error_pct"] == run["committee"]["probability"]["test_error_pct"]
    assert boosted["source"].startswith("run here")
    net2, net3 = run["members"][1]["train_set"], run["members"][2]["train_set"]
    assert net2["right"] == net2["wrong"] == TINY_SET_SIZE // 2 and 0 < net3["size"] <= TINY_SET_SIZE
    assert [m["net"] for m in run["members"]] == [1, 2, 3]
    assert run["checkpoint"] == "fig9/boosted-seed0/net3/checkpoint.npz"  # under --runs, no machine path
    # the rows not run now are the earlier run's, untouched
    before = {r["classifier"]: r for r in first["rows"]}
    kept = ("k-NN Euclidean, k = 1", "[16x16] LeNet-1", "LeNet-4", "[deslant] k-NN Euclidean, k = 1",
            "[deslant] linear", "pairwise linear (units' votes)", "28x28-500-150-10", "LeNet-4 / K-NN, k = 1",
            "LeNet-4 / local learning", "SVM poly 4")
    for name in kept:
        assert rows[name] == before[name]
        assert 0 <= before[name]["test_error_pct"] <= 100 and before[name]["source"].startswith("run here")
    assert result["data"]["lenet4-seed0"] == first["data"]["lenet4-seed0"]
    assert set(result["data"]["provenance"]) == set(GROUPS) - {"boosted"}
    readme = (out / "results" / "fig9" / "README.md").read_text()
    assert "--only boosted" in readme and "net 3 alone" in readme and "kept from" in readme
    # --reuse takes the saved boosted run as it is
    again = run_fig9(out, "--only", "boosted", "--reuse")
    assert again["data"]["boosted-seed0"] == run


def test_results_name_checkpoints_relative_to_the_runs_folder(tmp_path):
    """results.json never holds a machine-specific absolute path for a checkpoint."""
    from types import SimpleNamespace

    from lenet5.experiments.fig9 import runs_relative

    opts = SimpleNamespace(runs=tmp_path / "runs")
    inside = tmp_path / "runs" / "fig9" / "boosted-seed1" / "net3" / "checkpoint.npz"
    assert runs_relative(str(inside), opts) == "fig9/boosted-seed1/net3/checkpoint.npz"
    assert runs_relative("fig9/boosted-seed1/net3/checkpoint.npz", opts) == "fig9/boosted-seed1/net3/checkpoint.npz"
    elsewhere = runs_relative(str(tmp_path / "other" / "fig9" / "b" / "net3" / "checkpoint.npz"), opts)
    assert elsewhere == "fig9/b/net3/checkpoint.npz" and not elsewhere.startswith("/")
