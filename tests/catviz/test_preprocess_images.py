"""Every odd image form decodes correctly; every bad file gives a message naming it."""

import numpy as np
import pytest

from models.preprocess import ImageLoadError, load_image

from .conftest import write_bad_files, write_odd_images


def test_odd_images_decode_to_oriented_8bit_rgb(tmp_path):
    for name, (h, w) in write_odd_images(tmp_path).items():
        image = load_image(tmp_path / name)
        assert image.shape == (h, w, 3), name
        assert image.dtype == np.uint8, name


def test_bad_files_raise_a_message_naming_the_file(tmp_path):
    for path in write_bad_files(tmp_path):
        with pytest.raises(ImageLoadError, match=path.name):
            load_image(path)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_enormous_images_are_refused_from_the_header_without_decoding(tmp_path):
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("1", (20000, 15000)).save(path)  # 300 M pixels, a few hundred KB on disk
    with pytest.raises(ImageLoadError, match=r"huge.png: image too large \(20000x15000"):
        load_image(path)
