"""benchmarks/real_rgbd.py: the depth-based hand crop on synthetic frames and the seeded class split (no data)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_rgbd_benchmark", REPO / "benchmarks" / "real_rgbd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scene(hand_xy=(400, 150), hand_mm=800, holes=True) -> np.ndarray:
    """640×480 depth in mm: wall at 3.2 m, a body at 1.2 m, a 60×90 px hand at ``hand_mm``, speckle and holes."""
    rng = np.random.default_rng(0)
    d = np.full((480, 640), 3200, np.uint16)
    d[200:, 220:420] = 1200  # torso
    d[100:200, 280:360] = 1250  # head
    x, y = hand_xy
    d[y - 45:y + 45, x - 30:x + 30] = hand_mm
    d[y + 45:y + 160, x - 15:x + 15] = hand_mm + 150  # forearm, behind the hand
    if holes:
        d[rng.integers(0, 480, 3000), rng.integers(0, 640, 3000)] = 0
        d[5, 5] = hand_mm - 200  # single near speckle pixels must not win
        d[470, 630] = hand_mm - 250
    return d


def _contains(box, x0, y0, x1, y1) -> bool:
    return box[0] <= x0 and box[1] <= y0 and box[2] >= x1 and box[3] >= y1


def test_box_contains_the_nearest_blob(bench):
    box = bench.hand_box(scene((400, 150)))
    assert box[2] - box[0] == box[3] - box[1] == 220
    assert _contains(box, 400 - 30, 150 - 45, 400 + 30, 150 + 45)


def test_box_is_clamped_inside_the_frame(bench):
    box = bench.hand_box(scene((600, 60)))  # hand in the top-right corner
    assert box[0] >= 0 and box[1] == 0 and box[2] == 640 and box[3] <= 480
    assert _contains(box, 570, 15, 630, 105)


def test_box_ignores_a_nearer_speck_and_handles_empty_depth(bench):
    d = scene((200, 300), holes=False)
    d[10:13, 600:603] = 500  # a 9-pixel near speck: below min_area, and opened away
    box = bench.hand_box(d)
    assert _contains(box, 170, 255, 230, 345)
    empty = bench.hand_box(np.zeros((480, 640), np.uint16))
    assert empty[2] - empty[0] == 220 and 0 <= empty[0] and empty[2] <= 640


def test_split_is_seeded_and_disjoint(bench):
    task, ti = bench.split_classes(0)
    assert len(task) == len(ti) == 5 and not set(task) & set(ti)
    assert sorted(task + ti, key=lambda g: int(g[1:])) == bench.GESTURES
    assert bench.split_classes(0) == (task, ti)
    assert any(bench.split_classes(s)[0] != task for s in (1, 2, 3))
