"""The glyph pretraining set: no digit is a class, every glyph renders, samples are reproducible."""

import numpy as np
import pytest

from catviz.train_cli.data import glyphs


def test_no_digit_or_digit_lookalike_is_a_class():
    assert not set(glyphs.GLYPHS) & set("0123456789")
    assert not set(glyphs.GLYPHS) & glyphs.DIGIT_LOOKALIKES
    assert len(set(glyphs.GLYPHS)) == len(glyphs.GLYPHS) >= 50


@pytest.mark.parametrize("font", glyphs.FONTS)
def test_every_glyph_renders_in_every_font(font):
    for glyph in glyphs.GLYPHS:
        mask = glyphs.typeset_mask(glyph, 32, np.random.default_rng(0), (font,))
        assert mask.shape == (32, 32) and mask.max() > 0.3, (glyph, font)


def test_samples_are_a_function_of_seed_split_and_index():
    image, label = glyphs.glyph_sample(5)
    again, label_again = glyphs.glyph_sample(5)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and (image == again).all() and label == label_again
    assert not (glyphs.glyph_sample(5, "val")[0] == image).all()
    assert not (glyphs.glyph_sample(5, seed=1)[0] == image).all()
    labels = {glyphs.glyph_sample(i)[1] for i in range(400)}
    assert len(labels) > 0.9 * len(glyphs.GLYPHS)
