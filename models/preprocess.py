"""Image → model input: decoding (OpenCV) and normalisation, shared by training and the app.

The normalisation and input size are not constants here: they travel in each
checkpoint's metadata and come from the backbone's pretrained config at training time.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

#: Larger images are refused before decoding: a 16k x 16k photo is fine, a decompression
#: bomb is a clear error rather than a many-GB allocation.
MAX_PIXELS = 2**28

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # errors reach the user as ImageLoadError, not as OpenCV's stderr lines


class ImageLoadError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


def load_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array.

    EXIF orientation is applied; grayscale, RGBA, 16-bit, CMYK and palette images are
    converted; an animated file gives its first frame. Anything else raises
    :class:`ImageLoadError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    _check_dimensions(path)
    try:
        # IMREAD_COLOR applies EXIF orientation, drops alpha, converts gray/CMYK/palette.
        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise ImageLoadError(f"{path}: cannot decode image ({err.msg.strip()})") from err
    if image is None:
        raise ImageLoadError(f"{path}: not a readable image (unknown format, or truncated or corrupt data)")
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_dimensions(path: Path) -> None:
    """Read only the header (Pillow opens lazily) and refuse oversized images."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # we apply our own limit, with our own message
    try:
        with Image.open(path) as header:
            width, height = header.size
    except (UnidentifiedImageError, OSError, ValueError):
        return  # not a format Pillow knows: OpenCV decides below
    if width * height > MAX_PIXELS:
        raise ImageLoadError(
            f"{path}: image too large ({width}x{height} = {width * height:,} pixels; limit {MAX_PIXELS:,})"
        )


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
