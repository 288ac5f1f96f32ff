"""Tiling is exact for local operations, splits on out-of-memory, and stops when cancelled."""

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from engine.errors import DeviceOutOfMemory
from engine.progress import Cancelled, Progress
from engine.tiling import plan_tiles, tile_size_for_budget, tiled_apply


def local_op(radius: int, scale: int):
    """A toy 'network': box filter of the given radius (zero padding), then nearest ×scale upsampling."""

    def fn(crops):
        x = crops[0]
        k = 2 * radius + 1
        y = np.stack([uniform_filter(c, size=k, mode="constant") for c in x]).astype(np.float32)
        if len(crops) > 1:  # a second input on the same grid (like a kernel-code map)
            y = y + crops[1][:1]
        return y.repeat(scale, axis=1).repeat(scale, axis=2)

    return fn


def aligned_op(scale: int):
    """Depends on the 2×2 grid: average-pool by 2 then upsample (pads odd sizes by edge replication)."""

    def fn(crops):
        x = crops[0]
        c, h, w = x.shape
        xp = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
        pooled = xp.reshape(c, xp.shape[1] // 2, 2, xp.shape[2] // 2, 2).mean(axis=(2, 4))
        up = pooled.repeat(2, axis=1).repeat(2, axis=2)[:, :h, :w]
        return up.repeat(scale, axis=1).repeat(scale, axis=2)

    return fn


@pytest.mark.parametrize("h,w,tile", [(37, 53, 16), (64, 64, 24), (9, 70, 8)])
def test_crop_tiling_equals_untiled_when_context_covers_receptive_field(h, w, tile):
    rng = np.random.default_rng(0)
    x = rng.random((3, h, w), dtype=np.float32)
    code = rng.random((2, h, w), dtype=np.float32)
    fn = local_op(radius=3, scale=2)
    full = fn([x, code])
    tiled = tiled_apply(fn, [x, code], scale=2, out_channels=3, tile=tile, context=3)
    assert np.abs(tiled - full).max() < 1e-6


def test_too_little_context_is_not_exact():
    rng = np.random.default_rng(1)
    x = rng.random((1, 40, 40), dtype=np.float32)
    fn = local_op(radius=4, scale=1)
    tiled = tiled_apply(fn, [x], scale=1, out_channels=1, tile=10, context=1)
    assert np.abs(tiled - fn([x])).max() > 1e-3


def test_alignment_makes_grid_dependent_ops_exact():
    rng = np.random.default_rng(2)
    x = rng.random((1, 30, 30), dtype=np.float32)
    fn = aligned_op(scale=1)
    full = fn([x])
    aligned = tiled_apply(fn, [x], scale=1, out_channels=1, tile=10, context=3, align=2)
    assert np.abs(aligned - full).max() < 1e-6
    tiles = plan_tiles(30, 30, 10, 3, align=2)
    assert all(t.iy0 % 2 == 0 and t.ix0 % 2 == 0 for t in tiles)


def test_feather_blend_weights_sum_to_one_on_a_constant():
    x = np.full((1, 50, 70), 0.25, np.float32)
    out = tiled_apply(lambda c: c[0].copy(), [x], scale=1, out_channels=1, tile=16, context=5, blend="feather")
    assert np.allclose(out, 0.25, atol=1e-6)


def test_tiles_partition_the_image():
    tiles = plan_tiles(45, 61, 16, 4, align=8)
    cover = np.zeros((45, 61), int)
    for t in tiles:
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.iy0 <= t.y0 and t.iy1 >= t.y1 and t.ix0 <= t.x0 and t.ix1 >= t.x1
    assert (cover == 1).all()


def test_out_of_memory_splits_the_tile_and_stays_exact():
    rng = np.random.default_rng(3)
    x = rng.random((3, 64, 64), dtype=np.float32)
    base = local_op(radius=2, scale=2)
    calls = []

    def fragile(crops):
        h, w = crops[0].shape[-2:]
        calls.append((h, w))
        if h * w > 30 * 30:
            raise DeviceOutOfMemory("simulated: tile too large for the device")
        return base(crops)

    splits = []
    out = tiled_apply(
        fragile, [x], scale=2, out_channels=3, tile=64, context=2, min_tile=4,
        on_split=lambda t, n: splits.append(n),
    )
    assert np.abs(out - base([x])).max() < 1e-6
    assert splits and splits[0] == 32
    # every oversized attempt led to exactly one split; everything else ran on small tiles
    assert sum(h * w > 30 * 30 for h, w in calls) == len(splits)


def test_out_of_memory_below_min_tile_propagates():
    def always_oom(crops):
        raise DeviceOutOfMemory("simulated")

    x = np.zeros((1, 32, 32), np.float32)
    with pytest.raises(DeviceOutOfMemory):
        tiled_apply(always_oom, [x], scale=1, out_channels=1, tile=32, context=0, min_tile=8)


def test_cancel_stops_within_one_tile():
    x = np.zeros((1, 64, 64), np.float32)
    progress = Progress()
    calls = []

    def fn(crops):
        calls.append(1)
        if len(calls) == 2:
            progress.cancel()
        return crops[0].copy()

    with pytest.raises(Cancelled):
        tiled_apply(fn, [x], scale=1, out_channels=1, tile=16, context=0, progress=progress)
    assert len(calls) == 2  # the tile in flight finishes; no further tile starts


def test_progress_reaches_one_and_budget_gives_aligned_tile():
    seen = []
    x = np.zeros((1, 20, 20), np.float32)
    tiled_apply(lambda c: c[0].copy(), [x], scale=1, out_channels=1, tile=8, context=0,
                progress=Progress(lambda f, m: seen.append(f)))
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    side = tile_size_for_budget(64 * 1024 * 1024, bytes_per_lr_pixel=4096, context=12, align=8)
    assert side % 8 == 0 and side > 0
    assert (side + 24) ** 2 * 4096 <= 64 * 1024 * 1024


def test_channels_last_canvas_matches_channels_first():
    rng = np.random.default_rng(4)
    x = rng.random((3, 30, 34), dtype=np.float32)
    fn = local_op(radius=2, scale=3)
    chw = tiled_apply(fn, [x], scale=3, out_channels=3, tile=12, context=2)
    hwc = tiled_apply(fn, [x], scale=3, out_channels=3, tile=12, context=2, channels_last=True)
    assert hwc.shape == (90, 102, 3) and hwc.flags.c_contiguous
    assert np.array_equal(hwc, chw.transpose(1, 2, 0))
    fed = tiled_apply(fn, [x], scale=3, out_channels=3, tile=12, context=4, blend="feather", channels_last=True)
    assert np.abs(fed - fn([x]).transpose(1, 2, 0)).max() < 1e-5


def test_out_of_memory_split_is_notified_through_progress():
    notices = []
    progress = Progress(notice_callback=notices.append)
    sub = progress.sub_progress(0.0, 0.5)

    def fragile(crops):
        if crops[0].shape[-1] > 16:
            raise DeviceOutOfMemory("simulated")
        return crops[0].copy()

    tiled_apply(fragile, [np.zeros((1, 32, 32), np.float32)], scale=1, out_channels=1, tile=32, context=0,
                min_tile=4, progress=sub)
    assert len(notices) == 1 and "out of memory on a 32 px tile" in notices[0]
