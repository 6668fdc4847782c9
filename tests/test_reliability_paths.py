"""What the one atomic-write helper (lenet5.files) does with whatever sits at the output path:
a symlink is written through, a folder / FIFO / device / socket is refused with one line, a
missing folder is one line, and temp files left by a killed writer are removed by the next
write to the same name. Real symlinks, FIFOs, sockets and signals in a temporary folder."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from reliability_tools import REPO, one_line_error

from lenet5.cli import main
from lenet5.core.model import LeNet5
from lenet5.errors import Lenet5Error
from lenet5.files import WriteError, temp_pattern, write_bytes_atomic


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    target, link = tmp_path / "target.bin", tmp_path / "link.bin"
    target.write_bytes(b"old")
    link.symlink_to(target.name)
    write_bytes_atomic(link, b"new")
    assert link.is_symlink() and os.readlink(link) == target.name
    assert target.read_bytes() == b"new"


def test_a_chain_of_symlinks_and_a_dangling_one_reach_the_final_file(tmp_path):
    (tmp_path / "sub").mkdir()
    final = tmp_path / "sub" / "final.bin"
    (tmp_path / "mid").symlink_to(final)  # dangling until the write creates final.bin
    (tmp_path / "top").symlink_to(tmp_path / "mid")
    write_bytes_atomic(tmp_path / "top", b"x")
    assert final.read_bytes() == b"x"
    assert (tmp_path / "top").is_symlink() and (tmp_path / "mid").is_symlink()


def test_export_through_a_symlink_updates_the_target(tmp_path, capsys):
    target, link = tmp_path / "target.onnx", tmp_path / "link"
    target.write_bytes(b"placeholder")
    link.symlink_to(target)
    assert main(["export", "--onnx", str(link)]) == 0
    capsys.readouterr()
    assert link.is_symlink()
    assert target.read_bytes()[:2] != b"pl" and target.stat().st_size > 10_000


def test_a_checkpoint_saved_through_a_symlink_keeps_the_link(tmp_path):
    net = LeNet5.init(seed=0)
    target, link = tmp_path / "run3.npz", tmp_path / "best.npz"
    LeNet5.init(seed=1).save(target)
    link.symlink_to(target.name)
    net.save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(LeNet5.load(target).theta, net.theta)


def special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    return {"FIFO": fifo, "socket": sock_path, "character device": Path("/dev/null")}, sock


def test_fifo_socket_and_device_are_refused_and_left_as_they_are(tmp_path):
    paths, sock = special_files(tmp_path)
    with sock:
        for kind, path in paths.items():
            mode = path.stat().st_mode
            with pytest.raises(WriteError, match=f"cannot write {path}: it is a .*{kind}"):
                write_bytes_atomic(path, b"x")
            assert path.stat().st_mode == mode
            # a symlink to one is refused too (it would be written through)
            link = tmp_path / f"link-{kind.replace(' ', '-')}"
            link.symlink_to(path)
            with pytest.raises(WriteError, match=kind):
                write_bytes_atomic(link, b"x")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_outputs_to_a_fifo_folder_or_missing_folder_are_one_line(tmp_path, capsys, mnist_dir):
    os.mkfifo(tmp_path / "fifo")
    err = one_line_error(capsys, ["export", "--onnx", str(tmp_path / "fifo")])
    assert "FIFO" in err
    err = one_line_error(capsys, ["export", "--onnx", "/nonexistent/x.onnx"])
    assert "cannot write /nonexistent/x.onnx: No such file or directory" in err
    err = one_line_error(capsys, ["show", "--out", str(tmp_path), "--data-dir", str(mnist_dir)])
    assert f"cannot write {tmp_path}: it is a folder" in err


def test_an_unwritable_cache_is_still_an_oserror_for_code_that_tolerates_it(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "fifo", b"x")
    with pytest.raises(Lenet5Error):
        write_bytes_atomic(tmp_path / "missing" / "x", b"x")


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from lenet5.files import write_atomic
    def write(f):
        f.write(b"half a checkpoint")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
    write_atomic(sys.argv[1], write)
""")


def killed_writer(path):
    """Start a write to `path`, kill the writer with SIGKILL mid-write; the temps it left."""
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    return [p for p in path.parent.iterdir() if temp_pattern(path, ".tmp").fullmatch(p.name)]


def test_a_killed_checkpoint_write_leaves_a_temp_that_the_next_save_removes(tmp_path):
    path = tmp_path / "net.npz"
    left = killed_writer(path)
    assert len(left) == 1 and not path.exists()  # the final name was never touched
    LeNet5.init(seed=0).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]
    LeNet5.load(path)


def test_a_temp_of_a_running_writer_is_left_alone(tmp_path):
    path = tmp_path / "net.npz"
    live = tmp_path / f".net.npz.{os.getpid()}.0123abcd.tmp"  # this process is running
    live.write_bytes(b"in progress")
    other = tmp_path / ".other.npz.1.0123abcd.tmp"  # another file's temp
    other.write_bytes(b"x")
    write_bytes_atomic(path, b"x")
    assert live.exists() and other.exists()


def test_file_names_with_control_characters_are_escaped_when_printed(tmp_path, capsys, shared_mnist_dir):
    import json

    from PIL import Image

    from lenet5.data.idx import read_idx

    digit = read_idx(shared_mnist_dir / "t10k-images-idx3-ubyte.gz")[0]
    label = int(read_idx(shared_mnist_dir / "t10k-labels-idx1-ubyte.gz")[0])
    good = tmp_path / "seven\nfake: 1 confident\x1b[2J.png"
    Image.fromarray(255 - digit).resize((56, 56)).save(good, format="PNG")
    bad = tmp_path / "bad\r\x07.png"
    bad.write_text("not an image")
    assert main(["predict", str(good), str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out.count("\n") == 1 and "\x1b" not in out.out
    assert out.out.startswith(f"{tmp_path}/seven\\nfake: 1 confident\\x1b[2J.png: {label} ")
    assert out.err == f"lenet5: error: {tmp_path}/bad\\r\\x07.png: not an image file Pillow can read " \
                      "(unknown format, or corrupt)\n"
    assert main(["predict", "--json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(good)  # JSON keeps the real name
    assert main(["export", "--onnx", str(tmp_path / "net\n.onnx")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path}/net\\n.onnx (")
    err = one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "no\nsuch.npz")])
    assert "no\\nsuch.npz" in err
