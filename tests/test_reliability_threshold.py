"""A network that never reaches the rejection target (an untrained one: its most confident
test digit is already wrong) has no threshold: predict's JSON says null (valid JSON, never
`Infinity`), every tool says "no rejection threshold" and why, and the demo starts."""
import http.client
import json
import re
import signal
import subprocess
import sys

import pytest
from reliability_tools import REPO, lenet5_env

from lenet5.cli import main
from lenet5.core.model import LeNet5
from lenet5.data.mnist import load_mnist
from lenet5.tools.rejection import (
    no_threshold_reason,
    read_sidecar,
    rejection_threshold,
    sidecar_path,
    threshold_for,
    write_sidecar,
)


def strict_json(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, mnist_dir):
    path = tmp_path_factory.mktemp("untrained") / "untrained.npz"
    net = LeNet5.init(seed=0)
    images, labels = load_mnist("test", data_dir=mnist_dir)
    assert not threshold_for(net.forward(images), labels).reachable  # the case under test
    net.save(path)
    return path


@pytest.fixture
def digit_png(tmp_path, mnist):
    from PIL import Image

    from lenet5.data.mnist import PAD
    image = mnist[1][0][0][PAD:-PAD, PAD:-PAD]
    path = tmp_path / "seven.png"
    Image.fromarray(((image + 0.1) / 1.275 * 255).round().clip(0, 255).astype("uint8")).save(path)
    return path


def test_predict_json_says_null_and_the_note_says_why(untrained, mnist_dir, digit_png, capsys):
    code = main(["predict", "--json", "--checkpoint", str(untrained), "--data-dir", str(mnist_dir),
                 str(digit_png)])
    out = capsys.readouterr()
    assert code == 0
    record = strict_json(out.out)
    assert record["threshold"] is None and record["verdict"] == "unknown"
    assert re.search(r"no rejection threshold: this network does not reach 0.5% error on any share "
                     r"of the MNIST test set \(\d+\.\d\d% test error\)", out.err)


def test_the_sidecar_of_such_a_network_is_valid_json_and_read_back(untrained, mnist_dir, tmp_path):
    net = LeNet5.load(untrained)
    images, labels = load_mnist("test", data_dir=mnist_dir)
    copy = tmp_path / "copy.npz"
    copy.write_bytes(untrained.read_bytes())
    write_sidecar(copy, threshold_for(net.forward(images), labels))
    record = strict_json(sidecar_path(copy).read_text())
    assert record["threshold_gap"] is None
    assert not read_sidecar(copy).reachable
    assert rejection_threshold(copy, tmp_path / "no-mnist") is None  # (from the sidecar alone)
    assert no_threshold_reason(copy, tmp_path / "no-mnist").startswith("no rejection threshold: this network")


@pytest.mark.slow
def test_the_demo_starts_and_its_info_is_valid_json(untrained, mnist_dir):
    proc = subprocess.Popen([sys.executable, "-m", "lenet5", "demo", "--port", "0", "--checkpoint",
                             str(untrained), "--data-dir", str(mnist_dir)], cwd=REPO, env=lenet5_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "no rejection threshold: this network does not reach 0.5% error" in lines[0], (
            lines, proc.poll() is not None and proc.communicate())
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", lines[1]).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/info")
        info = strict_json(conn.getresponse().read())
        assert info["threshold"] is None
        conn.close()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err
