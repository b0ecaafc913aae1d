"""Per-episode image statistics: the pair-counting histogram equals ``np.bincount`` exactly,
so the statistics (and the dataset's stats bytes) are those of a plain per-pixel count."""

from __future__ import annotations

import numpy as np
import pytest

from simfail.dataset.stats import QUANTILES, image_stats, uint8_histogram


@pytest.mark.parametrize("n", [0, 1, 2, 7, 4096, 4097])
def test_histogram_equals_bincount(n):
    values = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    want = np.bincount(values, minlength=256)
    got = uint8_histogram(values)
    assert got.dtype == np.int64 and got.shape == (256,)
    assert np.array_equal(got, want)


def test_histogram_of_strided_odd_offset_and_constant_input():
    base = np.random.default_rng(1).integers(0, 256, (33, 3), dtype=np.uint8)
    col = base[:, 1]  # strided, starts at an odd byte
    assert np.array_equal(uint8_histogram(col), np.bincount(col, minlength=256))
    tail = base.reshape(-1)[1:]  # contiguous from an odd address
    assert np.array_equal(uint8_histogram(tail), np.bincount(tail, minlength=256))
    same = np.full(11, 255, np.uint8)
    assert uint8_histogram(same)[255] == 11 and uint8_histogram(same).sum() == 11


def test_image_stats_match_numpy_on_the_sampled_pixels():
    frames = np.random.default_rng(2).integers(0, 256, (5, 9, 7, 3), dtype=np.uint8)
    st = image_stats(frames)
    px = frames.reshape(-1, 3).astype(np.float64)
    assert np.array_equal(st["min"].reshape(3), px.min(0) / 255)
    assert np.array_equal(st["max"].reshape(3), px.max(0) / 255)
    assert np.allclose(st["mean"].reshape(3), px.mean(0) / 255, rtol=0, atol=1e-12)
    assert np.allclose(st["std"].reshape(3), px.std(0) / 255, rtol=0, atol=1e-12)
    for name, q in QUANTILES.items():
        assert np.allclose(st[name].reshape(3), np.quantile(px, q, axis=0) / 255, rtol=0, atol=1e-12), name
    assert st["count"].tolist() == [5]
