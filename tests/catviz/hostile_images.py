"""Hostile image files, generated cheaply (shared by the tests and ``bench/memory.py``)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def write_blank_png(path: Path, width: int, height: int, channels: int = 1, rows: int | None = None) -> Path:
    """A black 8-bit PNG streamed in blocks of rows: 16000x16000 grayscale is ~250 KB on
    disk and never needs the image in memory to write. ``rows`` < ``height`` writes only
    the first rows (a truncated file with a valid header), which is quick."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    color_type = {1: 0, 3: 2}[channels]
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + width * channels)  # filter byte 0, then the row's samples
    rows = height if rows is None else rows
    data = b"".join(compressor.compress(row * min(1000, rows - i)) for i in range(0, rows, 1000))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def write_photo_jpeg(path: Path, size: int, seed: int = 0) -> Path:
    """A size x size JPEG with smooth structure (a photo-like file of a realistic byte size)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size // 64, size // 64, 3), dtype=np.uint8)
    image = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path
