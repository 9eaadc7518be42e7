"""Every odd image form decodes correctly; every bad file gives a message naming it;
large files are checked before reading and decoded at display size (the 16000² PNG
under a memory limit: tests/catviz/test_export.py)."""

import cv2
import numpy as np
import pytest
from PIL import Image

from catviz.models.preprocess import (
    MAX_FILE_BYTES,
    MAX_SIDE,
    ImageLoadError,
    load_display_and_input,
    load_image,
)

from .conftest import write_bad_files, write_odd_images
from .hostile_images import write_blank_png


def test_odd_images_decode_to_oriented_8bit_rgb(tmp_path):
    for name, (h, w) in write_odd_images(tmp_path).items():
        image = load_image(tmp_path / name)
        assert image.shape == (h, w, 3), name
        assert image.dtype == np.uint8, name


def test_common_formats_decode_to_the_same_pixels(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    for suffix in ("png", "bmp", "tif", "ppm", "webp"):
        cv2.imwrite(str(tmp_path / f"c.{suffix}"), rgb[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])
        np.testing.assert_array_equal(load_image(tmp_path / f"c.{suffix}"), rgb, err_msg=suffix)
    cv2.imwrite(str(tmp_path / "gray16.png"), rgb[..., 0].astype(np.uint16) * 257)
    np.testing.assert_array_equal(load_image(tmp_path / "gray16.png"), np.repeat(rgb[..., :1], 3, axis=2))
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png").shape == (60, 90, 3)


def test_a_truncation_reported_inside_pillows_summary_is_called_truncated(tmp_path, monkeypatch):
    """Pillow may fold a plugin's "Truncated File Read" into its "cannot identify image file"
    summary (the hostile round's truncated JPEG): still called truncated, not "not an image"."""
    from PIL import Image, UnidentifiedImageError

    path = tmp_path / "cut.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)

    def refuse(*args, **kwargs):
        raise UnidentifiedImageError(f"cannot identify image file {str(path)!r}\nJPEG: Truncated File Read")

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: the image file is truncated (incomplete download?)"


def test_bad_files_raise_a_message_naming_the_file(tmp_path):
    for path in write_bad_files(tmp_path):
        with pytest.raises(ImageLoadError, match=path.name):
            load_image(path)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("suffix, keep", [("jpg", 200), ("jpg", 0.5), ("png", 0.5)])
def test_a_truncated_file_is_called_truncated(tmp_path, suffix, keep):
    """Cut in the header (JPEG: 200 bytes) or in the pixel data (half the file)."""
    whole = tmp_path / f"whole.{suffix}"
    cv2.imwrite(str(whole), np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    data = whole.read_bytes()
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: the image file is truncated (incomplete download?)"


def test_corrupt_jpeg_data_never_reaches_stderr(tmp_path, capfd):
    path = tmp_path / "damaged.jpg"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 40] = bytes(40)  # libjpeg: "Corrupt JPEG data: ... extraneous bytes"
    path.write_bytes(bytes(data))
    try:
        load_image(path)
    except ImageLoadError as err:
        assert path.name in str(err)
    assert capfd.readouterr().err == ""


def test_enormous_images_are_refused_from_the_header_without_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (20000, 15000)).save(path)  # 300 M pixels, a few hundred KB on disk
    with pytest.raises(ImageLoadError, match=r"huge.png: image too large \(20000x15000"):
        load_image(path)


def test_a_colour_png_too_large_to_decode_is_refused_from_its_header(tmp_path):
    path = write_blank_png(tmp_path / "big_rgb.png", 16000, 16000, channels=3, rows=1)  # the header is enough
    with pytest.raises(ImageLoadError, match=r"big_rgb.png: image too large to decode \(16000x16000 PNG"):
        load_image(path)


def test_oversized_and_non_image_files_are_refused_before_being_read(tmp_path):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:  # sparse: no disk used, no byte of it is read
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImageLoadError, match=r"huge.jpg: file too large for an image \(512 MiB; limit 512 MiB\)"):
        load_image(huge)
    text = tmp_path / "photo.jpg"
    text.write_bytes(np.random.default_rng(0).integers(0, 255, 2**20, dtype=np.uint8).tobytes())
    with pytest.raises(ImageLoadError, match="photo.jpg: not an image in a supported format"):
        load_image(text)


def test_pillows_decompression_bomb_guard_stays_on():
    import catviz.models.preprocess  # noqa: F401  (importing it must not switch the guard off)

    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 2**28


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_large_images_are_decoded_at_display_size_with_their_aspect(tmp_path, suffix):
    image = np.zeros((3000, 5000, 3), np.uint8)
    image[:1500] = (255, 128, 0)  # top half orange, bottom black
    path = tmp_path / f"wide.{suffix}"
    cv2.imwrite(str(path), image[..., ::-1])
    decoded = load_image(path)
    assert decoded.shape == (round(3000 * MAX_SIDE / 5000), MAX_SIDE, 3)
    np.testing.assert_allclose(decoded[:600].mean((0, 1)), (255, 128, 0), atol=3)
    assert decoded[-600:].max() <= 3


def test_display_copy_and_model_input_come_from_one_decode(tmp_path):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.full((2500, 4100, 3), 200, np.uint8))
    display, tensor = load_display_and_input(path, 96, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert max(display.shape[:2]) == MAX_SIDE
    assert tuple(tensor.shape) == (1, 3, 96, 96)
    assert float(tensor.mean()) == pytest.approx((200 / 255 - 0.5) / 0.25, abs=1e-3)
