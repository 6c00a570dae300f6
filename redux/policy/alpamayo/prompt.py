"""Observations → the backbone's prompt: chat text, image placeholders, ego-history tokens.

The layout follows Alpamayo-R1: a system turn, then a user turn holding every camera's
frames (oldest first) and the 48 discrete ego-history tokens, then the instruction; the
assistant turn is pre-filled with the mode's opening token. Every prompt of a preset has
the same length (fixed cameras, frames, image size and history), so a batch needs no
padding and the template is tokenised once; only the history tokens differ per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from redux.policy.alpamayo.presets import ModelPreset
from redux.policy.image_processing import preprocess_frames, tokens_per_image
from redux.policy.reasoning_text import CHAT_TOKENS, INSTRUCTION, SPECIAL_TOKENS, SYSTEM_PROMPT
from redux.policy.text_tokenizer import TokenIds
from redux.policy.trajectory_tokens import HISTORY_TOKENS, encode_history


@dataclass
class PromptBatch:
    input_ids: torch.Tensor  # (B, L)
    image_mask: torch.Tensor  # (B, L) bool, the image placeholders
    pixel_values: torch.Tensor  # (B·images·patches, C·T·P·P)
    image_grid_thw: torch.Tensor  # (B·images, 3)

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> "PromptBatch":
        move = [t.to(device, non_blocking=True) for t in (self.input_ids, self.image_mask, self.pixel_values, self.image_grid_thw)]
        return PromptBatch(*move)


class PromptBuilder:
    def __init__(self, preset: ModelPreset, tokenizer: PreTrainedTokenizerFast, ids: TokenIds):
        self.preset = preset
        self.ids = ids
        v = preset.vision
        self.image_tokens = tokens_per_image(preset.image_height, preset.image_width, v.patch, v.merge)
        image = CHAT_TOKENS["vision_start"] + SPECIAL_TOKENS["image_pad"] * self.image_tokens + CHAT_TOKENS["vision_end"]
        history = SPECIAL_TOKENS["traj_history_start"] + SPECIAL_TOKENS["traj_history"] * HISTORY_TOKENS
        history += SPECIAL_TOKENS["traj_history_end"]
        im_start, im_end = CHAT_TOKENS["im_start"], CHAT_TOKENS["im_end"]
        text = (
            f"{im_start}system\n{SYSTEM_PROMPT}{im_end}\n{im_start}user\n"
            + image * self.images_per_prompt
            + history
            + f"{INSTRUCTION}{im_end}\n{im_start}assistant\n"
        )
        self.template = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
        self.history_slots = np.flatnonzero(self.template == ids.traj_history)
        if len(self.history_slots) != HISTORY_TOKENS:
            raise ValueError("the tokenizer split the history placeholder; it must be one special token")

    @property
    def images_per_prompt(self) -> int:
        return len(self.preset.cameras) * self.preset.frames

    @property
    def length(self) -> int:
        return len(self.template)

    def frames_of(self, cameras: dict[str, np.ndarray]) -> np.ndarray:
        """One observation's camera frames in prompt order: (images, 3, H, W) uint8."""
        missing = [c for c in self.preset.cameras if c not in cameras]
        if missing:
            raise KeyError(f"the {self.preset.name} preset reads cameras {missing}, which the observation lacks")
        frames = [cameras[c][-self.preset.frames :] for c in self.preset.cameras]
        short = [c for c, f in zip(self.preset.cameras, frames) if len(f) < self.preset.frames]
        if short:
            raise ValueError(f"cameras {short} carry fewer than the {self.preset.frames} frames the preset reads")
        return np.concatenate(frames)

    def build(self, frames: np.ndarray, ego_history: np.ndarray) -> PromptBatch:
        """``frames`` (B, images, 3, H, W) uint8, ``ego_history`` (B, 16, 3) → one prompt per row."""
        batch = frames.shape[0]
        input_ids = np.repeat(self.template[None], batch, axis=0)
        input_ids[:, self.history_slots] = encode_history(ego_history) + self.ids.traj_start
        v = self.preset.vision
        pixel_values, grid = preprocess_frames(
            frames.reshape(-1, *frames.shape[2:]),
            height=self.preset.image_height,
            width=self.preset.image_width,
            patch_size=v.patch,
            merge_size=v.merge,
            temporal_patch_size=v.temporal_patch,
            mean=(v.pixel_mean,) * v.channels,
            std=(v.pixel_std,) * v.channels,
        )
        ids = torch.from_numpy(input_ids)
        return PromptBatch(ids, ids == self.ids.image_pad, pixel_values, grid)
