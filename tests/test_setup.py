"""Settings loading and the Cython helpers built by `make`."""
import numpy as np
import pytest

import cython_ext
import sample_config
from core.config import load_config, parse_overrides


def test_generate_config_defaults_are_the_published_models():
    cfg, default = sample_config.generate_config('satnet', 'i3d')
    assert (cfg.net_sat, cfg.net_dcn, cfg.net_block, cfg.net_n) == (1, 0, 'cab', 3)
    assert cfg.val_targets == ['AFLW2000-3D'] and default.val_targets == ['AFLW2000-3D']
    cfg, _ = sample_config.generate_config('hourglass', 'i2d')
    assert (cfg.net_sat, cfg.net_dcn, cfg.network, cfg.dataset) == (0, 0, 'hourglass', 'i2d')
    with pytest.raises(ValueError, match='satnet'):
        sample_config.generate_config('unet', 'i2d')


def test_load_config_returns_independent_copies_with_overrides():
    cfg, default = load_config('hourglass', 'i2d', ['net_block=hpm', 'multiplier=0.5'])
    assert cfg.net_block == 'hpm' and cfg.multiplier == 0.5 and default.net_block == 'hpm'
    again, _ = load_config('hourglass', 'i2d')
    assert again.net_block == 'cab' and again.multiplier == 1.0
    with pytest.raises(ValueError, match='net_blok'):
        parse_overrides(['net_blok=hpm'], cfg)


def test_cython_helpers_are_built_and_agree_with_numpy():
    assert cython_ext.BUILT, 'run `make` to build cython_ext'
    rng = np.random.RandomState(0)
    for trial in range(20):
        xy = rng.uniform(0, 200, (300, 2))
        wh = rng.uniform(5, 80, (300, 2))
        dets = np.hstack([xy, xy + wh, rng.uniform(0, 1, (300, 1))]).astype(np.float32)
        if trial % 2:
            dets[:, :4] = np.round(dets[:, :4])
        if trial % 5 == 0:      # degenerate boxes: zero or negative +1-areas
            dets[:20, 2:4] = dets[:20, 0:2] - 1
            dets[20:30, 2] = dets[20:30, 0] - 3
        assert cython_ext.nms(dets, 0.3) == cython_ext.nms_numpy(dets, 0.3)
        np.testing.assert_array_equal(cython_ext.bbox_overlaps(dets[:50, :4], dets[50:80, :4]),
                                      cython_ext.bbox_overlaps_numpy(dets[:50, :4], dets[50:80, :4]))
    base = np.array([[-248, -248, 263, 263], [-120, -120, 135, 135]], np.float32)
    plane = cython_ext.anchors_plane(5, 7, 32, base)
    np.testing.assert_array_equal(plane, cython_ext.anchors_plane_numpy(5, 7, 32, base))
    np.testing.assert_array_equal(plane[2, 3, 1], base[1] + [96, 64, 96, 64])


def test_nms_hand_case():
    dets = np.array([[0, 0, 9, 9, 0.9], [1, 1, 10, 10, 0.8], [20, 20, 29, 29, 0.7],
                     [5, 0, 14, 9, 0.6], [7, 0, 16, 9, 0.5]], np.float32)
    # IoU with box 0: box 1 81/119, box 3 50/150 (> 0.3, removed), box 4 30/170 (kept).
    assert cython_ext.nms_numpy(dets, 0.3) == [0, 2, 4]
    assert cython_ext.nms(dets, 0.3) == [0, 2, 4]
