"""Camera frames on the wire: JPEG or PNG bytes ↔ channel-first uint8 arrays (C, H, W).

RGB cameras travel as Alpasim sends them, JPEG at quality 95, or as PNG when the
policy input must survive the trip bit for bit. A frame of any other channel count —
minisim's BEV raster has 6 mask channels, more than PNG's 4 — travels as one 8-bit
grayscale PNG with its channel planes stacked top to bottom, C times as tall as the
camera's ``resolution_h`` in the catalogue: lossless, and readable by any PNG decoder.
Decoding is Pillow's (already a dependency; libjpeg-turbo in its wheels).
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

ImageFormat = Literal["jpeg", "png"]
JPEG_QUALITY = 95  # what the Alpasim runtime sends
MAX_SIDE_PX = 8192  # a catalogue or image beyond this is refused: a small PNG can inflate to gigabytes
MAX_PLANES = 16


def encode_frame(frame: np.ndarray, image_format: ImageFormat = "jpeg") -> bytes:
    """One (C, H, W) uint8 frame as image bytes; only 3-channel frames may be JPEG, the rest are PNG."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3:
        raise ValueError(f"frames are (C, H, W) uint8, got {frame.dtype} {frame.shape}")
    buffer = io.BytesIO()
    if frame.shape[0] == 3:
        image = Image.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0)), mode="RGB")
    else:
        image = Image.fromarray(np.ascontiguousarray(frame.reshape(-1, frame.shape[2])), mode="L")
    if image_format == "jpeg" and frame.shape[0] == 3:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=1)  # level 1: fast, and masks still compress well
    return buffer.getvalue()


def decode_frame(data: bytes, height: int = 0, width: int = 0) -> np.ndarray:
    """(C, H, W) uint8 of JPEG or PNG bytes from a camera of ``height`` x ``width`` (0: any).

    RGB (and any colour mode) gives 3 channels; grayscale gives height_of_image / height
    channel planes. ValueError for anything else: not JPEG/PNG, corrupt, or a size
    the catalogue does not allow.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("JPEG", "PNG"):
                raise ValueError(f"images must be JPEG or PNG, got {image.format}")
            image_width, image_height = image.size
            if image_width > MAX_SIDE_PX or image_width * image_height > MAX_SIDE_PX**2:
                raise ValueError(f"a {image_width}x{image_height} image is larger than any camera")
            if width and image_width != width:
                raise ValueError(f"image is {image_width} px wide, the camera {width}")
            if image.mode == "L":
                planes, remainder = divmod(image_height, height) if height else (1, 0)
                if remainder or not 0 < planes <= MAX_PLANES:
                    raise ValueError(f"a grayscale image {image_height} px tall is not 1 to {MAX_PLANES} planes of {height} px")
                pixels = np.asarray(image)
                return pixels.reshape(planes, image_height // planes, image_width)
            if height and image_height != height:
                raise ValueError(f"image is {image_height} px tall, the camera {height}")
            return np.ascontiguousarray(np.asarray(image.convert("RGB")).transpose(2, 0, 1))
    except ValueError:
        raise
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:  # Pillow's ways of saying "corrupt"
        raise ValueError(f"undecodable image: {err}") from None
