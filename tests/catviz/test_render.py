"""Rendering without Qt: zero-centred scales, diverging colours, opacity by magnitude."""

import numpy as np
import pytest

from catviz.render import (
    DIVERGING,
    Scale,
    colorize,
    colormap_for,
    lookup_table,
    overlay,
    own_share,
    symmetric_scale,
)


def test_own_share_says_how_much_of_a_shared_scale_a_map_reaches():
    strong, faint = np.array([[-50.0, 40.0]]), np.array([[2.0, -5.0]])
    shared = symmetric_scale([strong, faint])
    assert own_share(strong, shared) == 1.0 and own_share(faint, shared) == pytest.approx(0.1)
    assert own_share(faint, symmetric_scale([faint], positive_only=True), positive_only=True) == 1.0


def test_symmetric_scale_covers_every_map_and_is_centred_on_zero():
    a, b = np.array([[-3.0, 1.0]]), np.array([[0.5, 2.0]])
    assert symmetric_scale([a, b]) == Scale(-3.0, 3.0)
    assert symmetric_scale([a, b], positive_only=True) == Scale(0.0, 2.0)
    assert symmetric_scale([np.zeros((2, 2)), None]).limit > 0  # no division by zero later
    assert symmetric_scale([np.array([np.nan, -1.0])]) == Scale(-1.0, 1.0)
    pixels = np.concatenate([np.full(99, 0.5), [-40.0]])  # one extreme pixel
    assert symmetric_scale([pixels], percentile=99).limit < 1.0  # does not wash out the rest


def test_diverging_colours_sign_and_opacity_follows_magnitude():
    scale = Scale(-2.0, 2.0)
    rgba = colorize(np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]]), scale, DIVERGING, opacity=0.8)[0]
    assert rgba[2, 3] == 0  # no evidence: the image shows through
    assert rgba[1, 3] == pytest.approx(0.8 * 0.5**0.5 * 255, abs=1) and rgba[4, 3] == pytest.approx(0.8 * 255, abs=1)
    assert rgba[0, 3] == rgba[4, 3] and rgba[1, 3] == rgba[3, 3]  # opacity depends on |value| only
    negative, positive = rgba[0, :3].astype(int), rgba[4, :3].astype(int)
    assert negative[2] > negative[0]  # blue takes away from the logit
    assert positive[0] > positive[2]  # red adds to it
    np.testing.assert_array_equal(rgba[3, :3], colorize(np.array([[1.0]]), scale, DIVERGING)[0, 0, :3])


def test_positive_only_hides_negative_evidence():
    scale = Scale(0.0, 2.0)
    rgba = colorize(np.array([[-5.0, 0.0, 1.0, 2.0]]), scale, DIVERGING, opacity=1.0)[0]
    assert rgba[0, 3] == 0 and rgba[1, 3] == 0 and rgba[3, 3] == 255
    table = lookup_table(DIVERGING, scale)  # the colour bar shows the upper half only
    assert table[0].min() > 240  # from white at zero
    assert table[-1][0] > 2 * table[-1][2]  # to red


def test_sequential_maps_keep_constant_opacity_and_unsigned_data_never_gets_a_diverging_map():
    rgba = colorize(np.array([[0.0, 0.5, 1.0]]), Scale(0.0, 1.0), "turbo", opacity=0.5)[0]
    assert (rgba[:, 3] == 128).all()
    assert colormap_for(DIVERGING, signed=False) != DIVERGING
    assert colormap_for("viridis", signed=True) == "viridis"
    assert colormap_for("no such map", signed=True) == DIVERGING


def test_overlay_leaves_pixels_without_evidence_untouched():
    image = np.full((8, 10, 3), 100, np.uint8)
    heat = np.zeros((2, 2), np.float32)
    heat[0, 0] = 3.0
    out = overlay(image, heat, 0.9, DIVERGING, Scale(-3.0, 3.0))
    assert out.shape == image.shape
    assert (out[-1, -1] == 100).all() and not (out[0, 0] == 100).all()
