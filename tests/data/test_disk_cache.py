"""The disk cache of decoded frames: same pixels as in memory, reused, rebuilt when a build was cut short."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from socketedge.data.cache import FrameStorage, decode_set, frame_rows
from socketedge.data.disk_cache import DATA_FILE, META_FILE, DiskFrames
from socketedge.data.folders import labeled_folder, paired_folder
from socketedge.errors import ConfigError, DataError
from socketedge.models.predict import _batches

REPO = Path(__file__).resolve().parents[2]


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_disk_frames_equal_the_in_memory_ones_and_index_like_a_tensor(make_dataset, tmp_path):
    pairs = paired_folder(make_dataset("p", per_class=5, modalities=("rgb", "depth")), "rgb", "depth")
    for images in (pairs.a, pairs.b):
        mem = decode_set(images, 16, None, False, FrameStorage(1.0))
        disk = decode_set(images, 16, None, False, FrameStorage(0, tmp_path / "cache"))
        assert not mem.on_disk and disk.on_disk and len(disk) == len(mem) == 20
        assert disk.raw.shape == mem.raw.shape and disk.raw.dtype == mem.raw.dtype
        idx = torch.tensor([7, 0, 19, 3, 4, 5])
        assert torch.equal(disk.raw[idx], mem.raw[idx])
        assert torch.equal(disk.raw[-1], mem.raw[-1])
        assert torch.equal(disk.raw[4:11], mem.raw[4:11]) and torch.equal(disk.raw[::5], mem.raw[::5])
        view = frame_rows(disk.raw, slice(4, 11))
        assert isinstance(view, DiskFrames) and len(view) == 7  # rows without reading them
        assert torch.equal(view.tensor(), mem.raw[4:11]) and torch.equal(view[[6, 0]], mem.raw[[10, 4]])
        assert np.array_equal(np.asarray(view), mem.raw[4:11].numpy())
        got = torch.cat([raw for _, raw in _batches(disk.raw, 6)])  # predict reads it a chunk at a time
        assert torch.equal(got, mem.raw)
        with pytest.raises(IndexError):
            disk.raw[torch.tensor([20])]


def test_cache_is_reused_and_keyed_on_the_files(make_dataset, tmp_path):
    root = make_dataset("d", per_class=3, modalities=("depth",), labeled=False)
    cache = tmp_path / "cache"
    storage = lambda: FrameStorage(0, cache)  # noqa: E731
    from socketedge.data.folders import target_folder

    first = decode_set(target_folder(root / "depth"), 16, None, False, storage())
    (entry,) = _entries(cache)
    stamp = (entry / DATA_FILE).stat().st_mtime_ns
    again = decode_set(target_folder(root / "depth"), 16, None, False, storage())
    assert _entries(cache) == [entry] and (entry / DATA_FILE).stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert torch.equal(again.raw.tensor(), first.raw.tensor())
    other = decode_set(target_folder(root / "depth"), 12, None, False, storage())  # another size: another entry
    assert len(_entries(cache)) == 2 and other.raw.shape[-1] == 12
    victim = sorted((root / "depth").glob("*.png"))[0]
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))  # an edited file: a new key
    decode_set(target_folder(root / "depth"), 16, None, False, storage())
    assert len(_entries(cache)) == 3


def test_memory_budget_is_shared_by_the_sets_of_a_run(make_dataset, tmp_path):
    images = labeled_folder(make_dataset("r", per_class=5), "rgb")  # 20 × 3 × 16 × 16 bytes = 15 KiB
    storage = FrameStorage(20 * 3 * 16 * 16 * 1.5 / 2**30, tmp_path / "cache")
    assert not decode_set(images, 16, None, False, storage).on_disk
    assert decode_set(images, 16, None, False, storage).on_disk  # the budget is used up by the first set
    with pytest.raises(ConfigError, match="memory-budget"):
        FrameStorage.of(-1, None)


_SLOW_BUILD = """
import os, sys, time
from pathlib import Path
import socketedge.data.cache as cache
from socketedge.data.folders import target_folder
real = cache._decode
def slow(*a, **k):
    time.sleep(0.05)
    while os.environ.get("RELEASE") and not os.path.exists(os.environ["RELEASE"]):  # hold the build open
        time.sleep(0.02)
    return real(*a, **k)
cache._decode = slow
cache.DECODE_CHUNK = 4
print("building", flush=True)
cache.decode_set(target_folder(Path(sys.argv[1])), 16, None, False, cache.FrameStorage(0, Path(sys.argv[2])))
print("finished", flush=True)
"""


def test_a_killed_cache_build_is_detected_and_rebuilt(make_dataset, tmp_path):
    """SIGKILL in the middle of a build (nothing gets to clean up) leaves no entry under the key's name; the next
    run removes the leftover and builds a complete entry with the right pixels."""
    root = make_dataset("d", per_class=10, modalities=("depth",), labeled=False) / "depth"  # 40 frames, ≥ 2 s
    cache = tmp_path / "cache"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(root), str(cache)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in cache.glob(".*.tmp/" + DATA_FILE)):
            assert time.monotonic() < deadline and proc.poll() is None, "the build never started writing"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _entries(cache) == [] and list(cache.glob(".*.tmp"))  # a partial build, under a temporary name only

    from socketedge.data.folders import target_folder

    disk = decode_set(target_folder(root), 16, None, False, FrameStorage(0, cache))
    assert not list(cache.glob(".*.tmp"))  # the leftover is gone
    mem = decode_set(target_folder(root), 16, None, False, FrameStorage(1.0))
    assert torch.equal(disk.raw.tensor(), mem.raw)


def test_a_damaged_entry_is_detected_and_rebuilt(make_dataset, tmp_path, capsys):
    from socketedge.data.folders import target_folder

    root = make_dataset("d", per_class=3, modalities=("depth",), labeled=False) / "depth"
    cache = tmp_path / "cache"
    mem = decode_set(target_folder(root), 16, None, False, FrameStorage(1.0))
    decode_set(target_folder(root), 16, None, False, FrameStorage(0, cache))
    (entry,) = _entries(cache)
    with open(entry / DATA_FILE, "r+b") as fh:  # truncated outside socketedge
        fh.truncate(100)
    again = decode_set(target_folder(root), 16, None, False, FrameStorage(0, cache))
    assert "incomplete or damaged; rebuilding" in capsys.readouterr().err
    assert torch.equal(again.raw.tensor(), mem.raw)
    meta = json.loads((entry / META_FILE).read_text())
    (entry / META_FILE).write_text(json.dumps(meta | {"complete": False}))
    assert torch.equal(decode_set(target_folder(root), 16, None, False, FrameStorage(0, cache)).raw.tensor(), mem.raw)


@pytest.mark.parametrize("budget", [1.0, 0.0])
def test_unreadable_files_are_reported_together_by_name(make_dataset, tmp_path, budget):
    from socketedge.data.folders import target_folder

    root = make_dataset("d", per_class=3, modalities=("depth",), labeled=False) / "depth"
    files = sorted(root.glob("*.png"))
    files[2].write_bytes(b"not a png")
    files[7].write_bytes(b"")
    with pytest.raises(DataError) as e:
        decode_set(target_folder(root), 16, None, False, FrameStorage(budget, tmp_path / "cache"))
    msg = str(e.value)
    assert "2 of 12 depth files" in msg and files[2].name in msg and files[7].name in msg
    cache = tmp_path / "cache"
    assert not cache.exists() or not _entries(cache)  # nothing half-cached under an entry's name


def test_two_runs_building_one_entry_at_once_decode_it_once(make_dataset, tmp_path):
    """The second run waits on the first one's lock, then reuses its entry (and gets the same pixels)."""
    root = make_dataset("d", per_class=5, modalities=("depth",), labeled=False) / "depth"  # 20 frames, ≥ 1 s
    cache = tmp_path / "cache"
    release = tmp_path / "release"
    cmd = [sys.executable, "-c", _SLOW_BUILD, str(root), str(cache)]
    first = subprocess.Popen(cmd, env=os.environ | {"PYTHONPATH": str(REPO), "RELEASE": str(release)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(cache.glob(".*.tmp")):  # the first run holds the lock and is building (held open)
        assert time.monotonic() < deadline and first.poll() is None, "the first build never started"
        time.sleep(0.02)
    second = subprocess.Popen(cmd, env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert second.stdout.readline().strip() == "building"
    time.sleep(1.0)  # the second run reaches the lock
    release.touch()
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert "waiting for another run" in outs[1][1] and "waiting" not in outs[0][1]
    (entry,) = _entries(cache)
    from socketedge.data.folders import target_folder

    mem = decode_set(target_folder(root), 16, None, False, FrameStorage(1.0))
    assert torch.equal(decode_set(target_folder(root), 16, None, False, FrameStorage(0, cache)).raw.tensor(), mem.raw)
    assert not list(cache.glob(".*.tmp"))
