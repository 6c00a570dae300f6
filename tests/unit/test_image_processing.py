"""Qwen-VL pixel_values without torchvision: equal to transformers' PIL processor, and invertible."""

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from redux.policy.image_processing import preprocess_frames, tokens_per_image

QWEN3 = dict(patch_size=16, merge_size=2, temporal_patch_size=2)


def frames(n, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, height, width), dtype=np.uint8)


def reference(images, **kwargs):
    processor = Qwen2VLImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3, **QWEN3, **kwargs)
    return processor(images=list(images), return_tensors="pt")


def test_equals_transformers_pil_processor_on_resized_frames():
    x = frames(3, 64, 96)
    pixel_values, grid = preprocess_frames(x, height=64, width=96, **QWEN3)
    expected = reference(x, do_resize=False)
    assert pixel_values.dtype == torch.float32 and pixel_values.shape == (3 * 4 * 6, 3 * 2 * 16 * 16)
    torch.testing.assert_close(pixel_values, expected["pixel_values"], rtol=0, atol=0)
    assert torch.equal(grid, expected["image_grid_thw"]) and grid.dtype == torch.long


def test_equals_transformers_pil_processor_with_resize():
    # smart_resize rounds 100x150 to the nearest multiples of 32, 96x160, when the pixel budget allows
    x = frames(2, 100, 150, seed=1)
    pixel_values, grid = preprocess_frames(x, height=96, width=160, **QWEN3)
    expected = reference(x, size={"shortest_edge": 32 * 32, "longest_edge": 10**7})
    torch.testing.assert_close(pixel_values, expected["pixel_values"], rtol=0, atol=0)
    assert torch.equal(grid, expected["image_grid_thw"])


def test_unflattening_the_patches_gives_back_each_normalised_image():
    p, m, t, height, width = 4, 2, 3, 16, 24
    x = frames(2, height, width, seed=2)
    pixel_values, grid = preprocess_frames(
        x, height=height, width=width, patch_size=p, merge_size=m, temporal_patch_size=t
    )
    gh, gw = height // p, width // p
    assert grid.tolist() == [[1, gh, gw]] * 2
    patches = pixel_values.reshape(2, gh // m, gw // m, m, m, 3, t, p, p)
    for k in range(t):  # every temporal copy is the same frame
        images = patches[:, :, :, :, :, :, k].permute(0, 5, 1, 3, 6, 2, 4, 7).reshape(2, 3, height, width)
        torch.testing.assert_close(images, (torch.from_numpy(x).float() / 255 - 0.5) / 0.5, rtol=0, atol=1e-6)


def test_rows_of_a_merge_window_are_adjacent():
    x = np.zeros((1, 3, 64, 64), dtype=np.uint8)
    x[..., :16, 16:32] = 255  # only patch (row 0, col 1): the second patch of the first 2x2 window
    pixel_values, _ = preprocess_frames(x, height=64, width=64, **QWEN3)
    bright = (pixel_values == 1.0).all(dim=1).nonzero().flatten().tolist()
    assert bright == [1]


def test_tokens_per_image():
    assert tokens_per_image(64, 96, 16, 2) == 6
    assert tokens_per_image(448, 448, 16, 2) == 196
    pixel_values, _ = preprocess_frames(frames(1, 64, 96), height=64, width=96, **QWEN3)
    assert pixel_values.shape[0] == tokens_per_image(64, 96, 16, 2) * 2**2


@pytest.mark.parametrize(
    "bad, match",
    [
        (frames(1, 32, 32).astype(np.float32), "uint8"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "uint8 numpy array"),
        (np.zeros((3, 32, 32), dtype=np.uint8), "shape"),
        (np.zeros((1, 1, 3, 32, 32), dtype=np.uint8), "shape"),
        (np.zeros((0, 3, 32, 32), dtype=np.uint8), "shape"),
    ],
)
def test_rejects_bad_frames(bad, match):
    with pytest.raises(ValueError, match=match):
        preprocess_frames(bad, height=32, width=32, **QWEN3)


@pytest.mark.parametrize("height, width", [(48, 64), (64, 40), (0, 64)])
def test_rejects_sizes_not_multiples_of_the_merged_patch(height, width):
    with pytest.raises(ValueError, match="multiples of patch_size \\* merge_size = 32"):
        preprocess_frames(frames(1, 32, 32), height=height, width=width, **QWEN3)
    with pytest.raises(ValueError, match="multiples"):
        tokens_per_image(height, width, 16, 2)


def test_rejects_bad_normalisation_and_temporal_patch():
    with pytest.raises(ValueError, match="per channel"):
        preprocess_frames(frames(1, 32, 32), height=32, width=32, mean=(0.5,), **QWEN3)
    with pytest.raises(ValueError, match="temporal_patch_size"):
        preprocess_frames(frames(1, 32, 32), height=32, width=32, patch_size=16, merge_size=2, temporal_patch_size=0)
