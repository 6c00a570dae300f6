"""Qwen3-VL image preprocessing without torchvision: camera frames to ``pixel_values``.

Qwen3-VL reuses Qwen2-VL's image processor, whose default (torch) backend in
transformers 5.19 imports torchvision, which we do not ship. Its PIL backend,
``Qwen2VLImageProcessorPil``, runs without it but takes one image at a time through
numpy and sizes images itself (``smart_resize``); here each camera frame is resized
to a fixed (height, width) chosen by the model preset, so every frame gives the same
number of vision tokens.

The resize is PIL's bicubic on the uint8 frame — the call the PIL backend makes — so
the output equals ``Qwen2VLImageProcessorPil``'s (tests check this). The torchvision
backend resizes with torchvision's antialiased bicubic: close to PIL's, not bit-identical.

Each frame is one image: it is repeated ``temporal_patch_size`` times to fill the
vision tower's temporal patch, as the reference processor does for still images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def _check_size(height: int, width: int, patch_size: int, merge_size: int) -> None:
    factor = patch_size * merge_size
    if height <= 0 or width <= 0 or height % factor or width % factor:
        raise ValueError(
            f"height and width must be positive multiples of patch_size * merge_size = {factor}, got {height}x{width}"
        )


def tokens_per_image(height: int, width: int, patch_size: int, merge_size: int) -> int:
    """Vision tokens one (height, width) image becomes after the merger: one per merge_size² patches."""
    _check_size(height, width, patch_size, merge_size)
    return (height // patch_size) * (width // patch_size) // merge_size**2


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 3, H, W) uint8 → (N, 3, height, width) uint8 by PIL bicubic; a no-op at the target size."""
    if frames.shape[2:] == (height, width):
        return frames
    if frames.shape[1] != 3:
        raise ValueError(
            f"only RGB frames are resized; {frames.shape[1]}-channel frames must arrive at {height}x{width}, "
            f"got {frames.shape[2]}x{frames.shape[3]}"
        )
    resized = [
        np.asarray(Image.fromarray(frame.transpose(1, 2, 0)).resize((width, height), Image.Resampling.BICUBIC))
        for frame in frames
    ]
    return np.stack(resized).transpose(0, 3, 1, 2)


def preprocess_frames(
    frames: np.ndarray,
    *,
    height: int,
    width: int,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (N, C, H, W) uint8 to Qwen-VL ``pixel_values`` (N * gh * gw, C * T * P * P) and
    ``image_grid_thw`` (N, 3) = (1, gh, gw), where gh = height / P and gw = width / P.

    C is 3 for camera images; minisim's BEV raster has 6 mask channels, which a vision
    tower built with ``in_channels=6`` reads the same way. mean and std default to 0.5
    per channel (Qwen3-VL's values).

    Rows run over each image's merge_size x merge_size windows in raster order, the
    patches of a window together, so the vision merger can fuse neighbouring rows.
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be a uint8 numpy array, got {type(frames).__name__} {getattr(frames, 'dtype', '')}"
        )
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"frames must be (N >= 1, C, H, W), got shape {frames.shape}")
    _check_size(height, width, patch_size, merge_size)
    c = frames.shape[1]
    mean = (0.5,) * c if mean is None else tuple(mean)
    std = (0.5,) * c if std is None else tuple(std)
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std need one value per channel ({c}), got {mean} and {std}")
    if temporal_patch_size < 1:
        raise ValueError(f"temporal_patch_size must be >= 1, got {temporal_patch_size}")

    images = torch.from_numpy(np.ascontiguousarray(resize_frames(frames, height, width)))
    # rescale in float64, then normalise in float32: the reference processor's arithmetic, bit for bit
    images = (images.double() * (1 / 255)).float()
    images = (images - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)

    n, channels = images.shape[:2]
    t, p, m = temporal_patch_size, patch_size, merge_size
    gh, gw = height // p, width // p
    patches = images[:, None].expand(n, t, channels, height, width)
    patches = patches.reshape(n, t, channels, gh // m, m, p, gw // m, m, p)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (n, gh/m, gw/m, m, m, C, T, P, P)
    pixel_values = patches.reshape(n * gh * gw, channels * t * p * p).contiguous()
    image_grid_thw = torch.tensor([[1, gh, gw]], dtype=torch.long).repeat(n, 1)
    return pixel_values, image_grid_thw
