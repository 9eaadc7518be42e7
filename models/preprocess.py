"""Image → model input: bounded decoding (Pillow) and normalisation, shared by training and the app.

The normalisation and input size are not constants here: they travel in each
checkpoint's metadata and come from the backbone's pretrained config at training time.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

#: Larger images are refused from their header, before decoding: a 16k x 16k image is
#: fine, a decompression bomb is a clear error rather than a many-GB allocation.
MAX_PIXELS = 2**28
#: Non-JPEG images are decoded at full size in their own mode (Pillow: 1 byte per pixel
#: for grayscale or palette, 4 for colour): a larger decode is refused from the header.
MAX_DECODE_BYTES = 2**29
#: Larger files are refused before anything is read: no image we show needs more.
MAX_FILE_BYTES = 512 * 2**20
#: Images are decoded (JPEG: DCT-scaled by libjpeg) and then resized to at most this many
#: pixels per side: enough for the display and for any model input up to this size.
MAX_SIDE = 2048
#: Formats read (by Pillow; OpenCV only resizes); anything else is refused.
#: (Pillow opens multi-picture JPEGs, format "MPO", through its JPEG reader.)
FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "PPM", "JPEG2000")

# Pillow's decompression-bomb guard stays on, at our limit: it warns above it and raises
# above twice it; we refuse above it ourselves, with our own message.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageLoadError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


#: How Pillow says that a file ends early: in the header (``ImageFile._safe_read``) or in the pixel data.
_TRUNCATED = ("Truncated File Read", "image file is truncated")


def _truncated(path: Path, err: Exception) -> ImageLoadError | None:
    """The error for a file that ends early (an incomplete download or copy), else ``None``."""
    if any(marker in str(err) for marker in _TRUNCATED):  # also inside Pillow's "cannot identify ..." summary
        return ImageLoadError(f"{path}: the image file is truncated (incomplete download?)")
    return None


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str
    mode: str


def read_header(path: str | Path) -> ImageHeader:
    """Size, format and mode from the file's header alone, after checking its byte size.

    Refuses missing, empty, oversized and non-image files and images over
    :data:`MAX_PIXELS`, without reading the pixel data.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageLoadError(f"{path}: file too large for an image ({size / 2**20:,.0f} MiB; limit {MAX_FILE_BYTES // 2**20} MiB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own check follows
            with Image.open(path, formats=FORMATS) as image:
                header = ImageHeader(*image.size, image.format or "", image.mode)
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"{path}: image too large ({err})") from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _truncated(path, err) or ImageLoadError(
            f"{path}: not an image in a supported format ({', '.join(FORMATS)}): {err}"
        ) from err
    pixels = header.width * header.height
    if pixels > MAX_PIXELS:
        raise ImageLoadError(
            f"{path}: image too large ({header.width}x{header.height} = {pixels:,} pixels; limit {MAX_PIXELS:,})"
        )
    if header.format not in ("JPEG", "MPO"):
        needed = pixels * _bytes_per_pixel(header.mode)
        if needed > MAX_DECODE_BYTES:
            raise ImageLoadError(
                f"{path}: image too large to decode ({header.width}x{header.height} {header.format} in mode "
                f"{header.mode} needs {needed / 2**20:,.0f} MiB; limit {MAX_DECODE_BYTES // 2**20} MiB)"
            )
    return header


def _bytes_per_pixel(mode: str) -> int:
    """Pillow's storage for a decoded image of this mode (plus the RGB copy of a palette)."""
    if mode == "L":
        return 1
    if mode == "1" or mode.startswith("I;16"):
        return 2
    return 5 if mode in ("P", "PA") else 4


def load_image(path: str | Path, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array of at most ``max_side`` px per side.

    The header is checked first (:func:`read_header`). Pillow decodes JPEGs at 1/2, 1/4
    or 1/8 scale (libjpeg's DCT scaling) when that still gives ``max_side``, and other
    formats in their own mode (a grayscale PNG at one byte per pixel), reducing before
    any conversion, so memory stays within :data:`MAX_DECODE_BYTES`. libjpeg's warnings
    on corrupt data never reach stderr. EXIF orientation is applied; grayscale, RGBA,
    16-bit, CMYK and palette images are converted; an animated file gives its first
    frame. Anything else raises :class:`ImageLoadError` naming the file.
    """
    path = Path(path)
    read_header(path)
    try:
        image = _decode(path, max_side)
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise _truncated(path, err) or ImageLoadError(f"{path}: not a readable image (corrupt data: {err})") from err
    if image.size == 0:
        raise ImageLoadError(f"{path}: not a readable image (no pixels)")
    return image


#: EXIF orientation → the transpose that shows the image upright (as ``ImageOps.exif_transpose``).
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _decode(path: Path, max_side: int) -> np.ndarray:
    """Decode in the file's own mode (a JPEG already scaled down by libjpeg), reduce by an
    integer factor, then convert to RGB."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked by read_header
        with Image.open(path, formats=FORMATS) as image:
            orientation = image.getexif().get(0x0112, 1)
            if image.format in ("JPEG", "MPO"):  # DCT scaling: the smallest of 1/1 ... 1/8 still >= max_side
                factor = max_side / max(image.size)
                image.draft("RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor)))
            image.load()
            if image.mode == "1":
                image = image.convert("L")
            elif image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not image.mode.startswith("I;16"):
                image = image.convert("RGB")  # palette, CMYK, YCbCr, ...
            factor = max(image.size) // max_side
            if factor > 1 and not image.mode.startswith("I;16"):
                image = image.reduce(factor)
            if orientation in _ORIENTATION:
                image = image.transpose(_ORIENTATION[orientation])
            array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3] if array.shape[2] >= 3 else array[..., 0]  # drop alpha
    array = shrink(array, max_side)
    if array.dtype != np.uint8:  # 16-bit (I;16, I) and float images: scale 0..65535 to 0..255
        array = (array.astype(np.float32) / 257).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB) if array.ndim == 2 else np.ascontiguousarray(array)


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` resized (area interpolation, aspect kept) to at most ``max_side`` px per side."""
    height, width = image.shape[:2]
    factor = max_side / max(height, width)
    if factor >= 1:
        return image
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def load_display_and_input(
    path: str | Path, input_size: int, mean: tuple[float, ...], std: tuple[float, ...], max_side: int = MAX_SIDE
) -> tuple[np.ndarray, Tensor]:
    """The display copy (at most ``max_side`` px per side) and the model input of one file.

    The full-resolution image is never kept: a caller can hold on to the display copy
    alone. The copy is at least ``input_size`` per side when the file is, so the model
    sees the same pixels as from the full image resized.
    """
    display = load_image(path, max(max_side, input_size))
    return display, preprocess(display, input_size, mean, std)


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) image to ``size`` (square int, or (height, width))."""
    height, width = (size, size) if isinstance(size, int) else size
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def to_tensor(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """(H, W, 3) uint8 RGB → normalised (3, H, W) float tensor."""
    array = (image.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def preprocess(
    image: np.ndarray, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Tensor:
    """The test-time transform (paper: resize to the input size directly): (1, 3, S, S)."""
    return to_tensor(resize(image, input_size), mean, std)[None]
