"""Bad inputs across every command, tried as a new user would (issue 13's probe, as a table).

Each row must end in exit code 1, at most two lines of output (``error: …`` and perhaps a hint), no traceback,
and nothing created or changed on disk. The rows are chosen to fail before any heavy work, so the table stays
fast; the artifacts they use (a tiny source checkpoint, a bundle, a good and a failed ONNX export, a session)
are built once per module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CLASSES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Every input the table refers to, under one root (whose every file and folder the test watches)."""
    import torch

    from socketedge.capture.capture import CaptureConfig, capture
    from socketedge.data.preprocess import preprocessing_for
    from socketedge.data.testing import write_dataset
    from socketedge.export.pipeline import ExportConfig, export_model
    from socketedge.models.bundle import save_bundle
    from socketedge.models.checkpoint import save_source
    from socketedge.models.ensemble import Ensemble, Member
    from socketedge.models.source_model import new_source_model

    root = tmp_path_factory.mktemp("bad-inputs")
    torch.manual_seed(0)
    write_dataset(root / "rgb", CLASSES[:2], 4)
    write_dataset(root / "one", ["a"], 4)
    write_dataset(root / "labeled", CLASSES, 2, ("depth",))
    write_dataset(root / "target", CLASSES, 2, ("depth",), labeled=False)
    write_dataset(root / "ti", ["e", "f"], 2, ("rgb", "depth"))
    write_dataset(root / "broken", CLASSES, 2, ("depth",), labeled=False)  # two files no decoder reads
    write_dataset(root / "broken-rgb", CLASSES[:2], 4)
    write_dataset(root / "broken-ti", ["e", "f"], 2, ("rgb", "depth"))
    for folder in (root / "broken" / "depth", root / "broken-rgb" / "a"):
        files = sorted(folder.glob("*.png"))
        files[0].write_bytes(b"not a png")
        files[-1].write_bytes(b"")
    (root / "broken-ti" / "rgb" / "e" / "e_0000.png").write_bytes(b"")
    (root / "broken-ti" / "depth" / "f" / "f_0001.png").write_bytes(b"not a png")
    src = new_source_model("tiny_cnn", CLASSES)
    save_source(src, root / "src.ckpt")
    member = Member(new_source_model("tiny_cnn", CLASSES).eval(), preprocessing_for(src.meta, "depth"))
    save_bundle(root / "bundle", Ensemble([member]).eval(), "socket",
                {"modality": "depth", "target": str((root / "labeled" / "depth").resolve())})
    export_model(ExportConfig(model=root / "bundle", out=root / "good.onnx", calib_frames=4))
    export_model(ExportConfig(model=root / "bundle", out=root / "strict.onnx", calib_frames=4, threshold=1e-15))
    assert (root / "strict.failed.onnx").is_file()
    capture(CaptureConfig(source="synthetic://?size=32", out=root / "session", frames=2))
    torch.save(torch.nn.Linear(2, 4), root / "model.pt")  # a pickled module, not a state dict
    (root / "trunc.pt").write_bytes(b"PK\x03\x04 truncated")
    (root / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (root / "junk.onnx").write_text("not a model\n")
    (root / "notes.txt").write_text("a file, not a directory\n")
    (root / "dup.txt").write_text("a\nb\na\nc\n")
    (root / "single.txt").write_text("a\n")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "adir").mkdir()
    (root / "adir" / "keep.txt").write_text("not a session\n")
    (root / "cwd").mkdir()
    return root


# (id, command line with {placeholders} under the world root, a fragment the error line must contain)
CASES = [
    # synth
    ("synth-no-out", "synth", "--out"),
    ("synth-per-class-0", "synth --out {new} --per-class 0", "--per-class"),
    ("synth-size-8", "synth --out {new} --size 8", "--size"),
    ("synth-unknown-shape", "synth --out {new} --task-classes blob", "blob"),
    ("synth-overlap", "synth --out {new} --task-classes sphere,cube --ti-classes cube,ring", "cube"),
    ("synth-out-file", "synth --out {w}/notes.txt", "notes.txt"),
    ("synth-workers-0", "synth --out {new} --workers 0", "--workers"),
    ("synth-not-a-number", "synth --out {new} --per-class many", "--per-class"),
    # capture
    ("capture-negative-duration", "capture synthetic:// --out {new} --duration -1", "--duration"),
    ("capture-frames-0", "capture synthetic:// --out {new} --frames 0", "--frames"),
    ("capture-every-0", "capture synthetic:// --out {new} --every 0", "--every"),
    ("capture-mode", "capture synthetic:// --out {new} --mode both", "--mode"),
    ("capture-color-format", "capture synthetic:// --out {new} --color-format bmp", "--color-format"),
    ("capture-unknown-scheme", "capture webcam://0 --out {new}", "webcam"),
    ("capture-not-a-uri", "capture camera0 --out {new}", "URI"),
    ("capture-out-file", "capture synthetic:// --out {w}/notes.txt", "is a file"),
    ("capture-out-foreign-dir", "capture synthetic://?frames=1 --out {w}/adir", "not a capture session"),
    ("capture-bad-label", "capture synthetic:// --out {new} --label a/b", "label"),
    ("capture-record-not-realsense", "capture synthetic:// --out {new} --record {new}.db3", "realsense"),
    ("capture-unknown-profile", "capture synthetic:// --out {new} --profile d999", "d999"),
    ("capture-bad-uri-option", "capture synthetic://?size=big --out {new}", "size"),
    # sessions
    ("sessions-validate-missing", "sessions validate {new}", "does not exist"),
    ("sessions-info-missing", "sessions info {new}", "does not exist"),
    ("sessions-validate-file", "sessions validate {w}/notes.txt", "notes.txt"),
    ("sessions-info-not-session", "sessions info {w}/adir", "not a capture session"),
    ("sessions-unknown-subcommand", "sessions repair {w}/session", "repair"),
    # import
    ("import-sunrgbd-missing", "import sunrgbd {new} --out {new}-out", "does not exist"),
    ("import-rgbnir-missing", "import rgbnir {new} --out {new}-out", "does not exist"),
    ("import-diml-missing", "import diml {new} --out {new}-out", "does not exist"),
    ("import-num-task-1", "import rgbnir {w}/rgb --out {new} --num-task 1", "--num-task"),
    ("import-unknown-dataset", "import nyu {w}/rgb --out {new}", "nyu"),
    # train-source
    ("train-one-class", "train-source --data {w}/one --arch tiny_cnn --out {new}.ckpt", "at least 2"),
    ("train-negative-lr", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt --lr -1", "--lr"),
    ("train-val-fraction", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt --val-fraction 2",
     "--val-fraction"),
    ("train-out-dir", "train-source --data {w}/rgb --arch tiny_cnn --out {w}/adir", "is a directory"),
    ("train-input-size-0", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt --input-size 0",
     "--input-size"),
    ("train-input-size-4", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt --input-size 4",
     "--input-size"),
    ("train-unknown-arch", "train-source --data {w}/rgb --arch resnet51 --out {new}.ckpt", "resnet51"),
    ("train-missing-data", "train-source --data {new} --arch tiny_cnn --out {new}.ckpt", "does not exist"),
    ("train-epochs-0", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt --epochs 0", "--epochs"),
    ("train-select", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt --select sometimes", "--select"),
    ("train-batch-1", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt --batch-size 1",
     "--batch-size"),
    ("train-unreadable-images", "train-source --data {w}/broken-rgb --arch tiny_cnn --out {new}.ckpt",
     "2 of 8 rgb files"),
    ("train-negative-memory-budget", "train-source --data {w}/rgb --arch tiny_cnn --out {new}.ckpt "
     "--memory-budget -1", "--memory-budget"),
    ("train-unknown-option", "train-source --data {w}/rgb --out {new}.ckpt --epoch 3", "--epoch"),
    # import-source
    ("import-source-missing-weights",
     "import-source --arch tiny_cnn --weights {new}.pt --classes {w}/classes.txt --out {new}.ckpt", "does not exist"),
    ("import-source-pickled-module",
     "import-source --arch tiny_cnn --weights {w}/model.pt --classes {w}/classes.txt --out {new}.ckpt",
     "state_dict"),
    ("import-source-truncated",
     "import-source --arch tiny_cnn --weights {w}/trunc.pt --classes {w}/classes.txt --out {new}.ckpt", "truncated"),
    ("import-source-junk-safetensors",
     "import-source --arch tiny_cnn --weights {w}/junk.safetensors --classes {w}/classes.txt --out {new}.ckpt",
     "safetensors"),
    ("import-source-duplicate-classes",
     "import-source --arch tiny_cnn --weights {w}/model.pt --classes {w}/dup.txt --out {new}.ckpt", "more than once"),
    ("import-source-one-class",
     "import-source --arch tiny_cnn --weights {w}/model.pt --classes {w}/single.txt --out {new}.ckpt", "at least 2"),
    ("import-source-out-dir",
     "import-source --arch tiny_cnn --weights {w}/model.pt --classes {w}/classes.txt --out {w}/adir",
     "is a directory"),
    ("import-source-input-size-0",
     "import-source --arch tiny_cnn --weights {w}/model.pt --classes {w}/classes.txt --out {new}.ckpt "
     "--input-size 0", "--input-size"),
    # adapt
    ("adapt-negative-lambda-ti", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} "
     "--lambda-ti -1", "--lambda-ti"),
    ("adapt-negative-lambda-pl", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} "
     "--lambda-pl -0.1", "--lambda-pl"),
    ("adapt-negative-lr", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} --lr -1", "--lr"),
    ("adapt-zero-lr", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} --lr 0", "--lr"),
    ("adapt-negative-ti-backbone-rate", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} "
     "--ti-backbone-lr-mult -1", "--ti-backbone-lr-mult"),
    ("adapt-holdout-above-1", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} "
     "--ti-holdout 1.5", "--ti-holdout"),
    ("adapt-epochs-0", "adapt --source {w}/src.ckpt --target {w}/target --out {new} --epochs 0", "--epochs"),
    ("adapt-depth-scale-0", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} "
     "--depth-scale 0", "--depth-scale"),
    ("adapt-depth-range-reversed", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} "
     "--depth-range 5,1 --epochs 1", "--depth-range"),
    ("adapt-depth-range-garbage", "adapt --source {w}/src.ckpt --target {w}/target --out {new} --depth-range far",
     "NEAR,FAR"),
    ("adapt-unknown-method", "adapt --source {w}/src.ckpt --target {w}/target --out {new} --method dann", "dann"),
    ("adapt-unknown-term-scale", "adapt --source {w}/src.ckpt --target {w}/target --out {new} --term-scale big",
     "--term-scale"),
    ("adapt-unknown-recalibrate-bn", "adapt --source {w}/src.ckpt --target {w}/target --out {new} "
     "--recalibrate-bn sometimes", "--recalibrate-bn"),
    ("adapt-out-file", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {w}/notes.txt",
     "is a file"),
    ("adapt-missing-source", "adapt --source {new}.ckpt --target {w}/target --ti {w}/ti --out {new}",
     "does not exist"),
    ("adapt-pickled-source", "adapt --source {w}/model.pt --target {w}/target --ti {w}/ti --out {new}",
     "import-source"),
    ("adapt-batch-1", "adapt --source {w}/src.ckpt --target {w}/target --out {new} --batch-size 1", "--batch-size"),
    ("adapt-resume-nothing", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} --resume",
     "--resume"),
    ("adapt-unreadable-target", "adapt --source {w}/src.ckpt --target {w}/broken --ti {w}/ti --out {new}",
     "2 of 8 depth files"),
    ("adapt-unreadable-target-disk", "adapt --source {w}/src.ckpt --target {w}/broken --ti {w}/ti --out {new} "
     "--memory-budget 0", "2 of 8 depth files"),
    ("adapt-unreadable-ti-both-sides", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/broken-ti "
     "--out {new}", "2 of 8 rgb/depth files"),
    ("adapt-negative-memory-budget", "adapt --source {w}/src.ckpt --target {w}/target --ti {w}/ti --out {new} "
     "--memory-budget -1", "--memory-budget"),
    ("adapt-socket-without-ti", "adapt --source {w}/src.ckpt --target {w}/target --out {new}", "--ti"),
    # eval
    ("eval-missing-model", "eval {new}.ckpt --data {w}/labeled", "does not exist"),
    ("eval-missing-data", "eval {w}/src.ckpt --data {new} --modality depth", "does not exist"),
    ("eval-depth-scale-0", "eval {w}/src.ckpt --data {w}/labeled --depth-scale 0", "--depth-scale"),
    ("eval-batch-0", "eval {w}/src.ckpt --data {w}/labeled --batch-size 0", "--batch-size"),
    ("eval-unreadable-images", "eval {w}/src.ckpt --data {w}/broken-rgb", "2 of 8 rgb files"),
    ("eval-out-file", "eval {w}/src.ckpt --data {w}/labeled --out {w}/notes.txt", "is a file"),
    ("eval-depth-range-one-value", "eval {w}/src.ckpt --data {w}/labeled --depth-range 1", "NEAR,FAR"),
    # export
    ("export-out-dir", "export {w}/bundle --out {w}/adir", "is a directory"),
    ("export-out-suffix", "export {w}/bundle --out {new}.txt", ".onnx"),
    ("export-negative-threshold", "export {w}/bundle --out {new}.onnx --parity-threshold -1", "--parity-threshold"),
    ("export-threshold-above-1", "export {w}/bundle --out {new}.onnx --precision fp16 --parity-threshold 2",
     "--parity-threshold"),
    ("export-threshold-nan", "export {w}/bundle --out {new}.onnx --parity-threshold nan", "--parity-threshold"),
    ("export-unknown-precision", "export {w}/bundle --out {new}.onnx --precision fp8", "fp8"),
    ("export-unknown-format", "export {w}/bundle --out {new}.onnx --format coreml", "coreml"),
    ("export-calib-frames-0", "export {w}/bundle --out {new}.onnx --calib-frames 0", "--calib-frames"),
    ("export-missing-model", "export {new} --out {new}.onnx", "does not exist"),
    ("export-rgb-source-no-modality", "export {w}/src.ckpt --out {new}.onnx", "--modality"),
    ("export-int8-activations", "export {w}/bundle --out {new}.onnx --precision int8 --int8-activations uint4",
     "uint4"),
    ("export-onnx-as-model", "export {w}/good.onnx --out {new}.onnx", "already exported"),
    ("export-tensorrt-missing", "export {w}/bundle --out {new}.engine --format tensorrt", "tensorrt"),
    ("export-frame-size", "export {w}/bundle --out {new}.engine --format tensorrt --frame-size 0x0",
     "--frame-size"),
    # run
    ("run-missing-model", "run {new}.onnx --source synthetic:// --headless", "does not exist"),
    ("run-window-0", "run {w}/good.onnx --source synthetic:// --window 0 --headless", "--window"),
    ("run-smooth", "run {w}/good.onnx --source synthetic:// --smooth wobble --headless", "--smooth"),
    ("run-source-not-uri", "run {w}/good.onnx --source camera0 --headless", "URI"),
    ("run-json-dir", "run {w}/good.onnx --source synthetic:// --json {w}/adir --headless", "is a directory"),
    ("run-failed-parity", "run {w}/strict.failed.onnx --source synthetic://?frames=1 --headless",
     "failed its parity check"),
    ("run-threads-0", "run {w}/good.onnx --source synthetic:// --threads 0 --headless", "--threads"),
    ("run-camera-and-source", "run {w}/good.onnx --camera --source synthetic:// --headless", "not both"),
    ("run-max-frames-0", "run {w}/good.onnx --source synthetic:// --max-frames 0 --headless", "--max-frames"),
    ("run-junk-onnx", "run {w}/junk.onnx --source synthetic:// --headless", "onnxruntime"),
    ("run-provider", "run {w}/good.onnx --source synthetic:// --provider tpu --headless", "tpu"),
    ("run-unknown-backend", "run {w}/good.onnx --source synthetic:// --backend openvino --headless", "openvino"),
    # bench
    ("bench-batch-garbage", "bench {w}/good.onnx --batch one", "--batch"),
    ("bench-batch-0", "bench {w}/good.onnx --batch 0", "--batch"),
    ("bench-shape-0", "bench {w}/good.onnx --shape 0x0", "--shape"),
    ("bench-shape-garbage", "bench {w}/good.onnx --shape vga", "--shape"),
    ("bench-json-dir", "bench {w}/good.onnx --json {w}/adir", "is a directory"),
    ("bench-iters-0", "bench {w}/good.onnx --iters 0", "--iters"),
    ("bench-missing-model", "bench {new}.onnx --iters 1 --loop-frames 0", "does not exist"),
    # top level, doctor, demo
    ("unknown-command", "adpat --source {w}/src.ckpt", "adpat"),
    ("doctor-unknown-option", "doctor --verbose", "--verbose"),
    ("demo-unknown-option", "demo --fast", "--fast"),
]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its size and modification time (a directory's changes when entries
    are added or removed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (p.is_dir(), st.st_size if not p.is_dir() else 0, st.st_mtime_ns)
    return out


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)
    commands = {c[1].split()[0] for c in CASES}
    assert {"synth", "capture", "sessions", "import", "train-source", "import-source", "adapt", "eval", "export",
            "run", "bench", "doctor", "demo"} <= commands


@pytest.mark.parametrize("case, line, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_1_and_touches_nothing(case, line, needle, world, cli, monkeypatch):
    monkeypatch.chdir(world / "cwd")  # eval's default --out (and anything relative) would land here
    args = [a.format(w=world, new=world / f"new-{case}") for a in line.split()]
    before = snapshot(world)
    r = cli(*args)
    output = (r.stdout + r.stderr).strip()
    lines = output.splitlines()
    assert r.exit_code == 1, f"exit {r.exit_code}:\n{output}"
    assert "Traceback" not in output, output
    assert 1 <= len(lines) <= 2, output
    assert lines[0].startswith("error: "), output
    assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    assert snapshot(world) == before, f"files changed: {sorted(set(snapshot(world).items()) ^ set(before.items()))}"


def test_a_bug_keeps_its_traceback(cli, monkeypatch):
    """The boundary sorts: an exception that is not a user's mistake is re-raised, never turned into a line."""
    import socketedge.doctor

    def broken():
        raise RuntimeError("a bug in socketedge")

    monkeypatch.setattr(socketedge.doctor, "collect", broken)
    with pytest.raises(RuntimeError, match="a bug in socketedge"):
        cli("doctor")
    monkeypatch.setattr(socketedge.doctor, "collect", lambda: {"x": 1})
    assert cli("doctor").exit_code == 0


def test_traceback_of_a_user_error_on_request(cli, monkeypatch, tmp_path):
    from socketedge.errors import SocketEdgeError

    monkeypatch.setenv("SOCKETEDGE_TRACEBACK", "1")
    with pytest.raises(SocketEdgeError, match="does not exist"):
        cli("sessions", "info", tmp_path / "nope")
