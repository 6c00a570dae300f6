"""Serving the whole Qwen3-VL backbone with vLLM's native model: the real presets (M-RoPE, deepstack).

The language-model export (``served_model``) feeds vLLM prompt embeddings, which carry
neither Qwen3-VL's 3D (time, row, column) positions of the image tokens nor the deepstack
features the vision tower adds inside the first decoder layers. vLLM's own
``Qwen3VLForConditionalGeneration`` computes both, so for presets with
``image_positions="mrope"`` the engine serves the backbone whole:

- **Checkpoint.** ``write_native_model`` writes ``model.vlm`` as a transformers
  checkpoint (config.json with the Qwen3-VL architecture, safetensors shards at the
  engine's dtype, written one tensor at a time), our tokenizer, and processor configs
  whose patch, merge and temporal sizes, mean/std and pixel bounds are the preset's, so
  vLLM's processor gives every image as many tokens as our ``PromptBuilder``.
- **Names.** Our backbone tensors are transformers' names under ``vlm.``; without that
  prefix they are the checkpoint names vLLM's ``hf_to_vllm_mapper`` maps. A push streams
  them lazily in buckets (``weight_sync``), as the language-model export does.
- **Prompts.** The torch replica runs the vision tower, exactly as the torch engine
  does, and hands vLLM each image's features with the deepstack levels concatenated
  along the hidden axis (``image_embeds``: vLLM's own vision-tower output format) plus
  its ``image_grid_thw``. The token ids carry one ``<|image_pad|>`` per image; vLLM
  expands each to the image's token count (from the grid), gives the image tokens their
  M-RoPE positions and adds the deepstack features, so the language model computes what
  ours does. vLLM's vision tower is loaded (its deepstack path needs it) but never run.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from redux.config import VllmConfig
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.presets import ModelPreset
from redux.policy.reasoning_text import CHAT_TOKENS, SPECIAL_TOKENS
from redux.policy.vllm.served_engine import ServedLanguageModel

NATIVE_ARCHITECTURE = "Qwen3VLForConditionalGeneration"
BACKBONE_PREFIX = "vlm."
HEAD = "vlm.lm_head.weight"
SHARD_BYTES = 2 * 2**30
INDEX = "model.safetensors.index.json"
_IMAGE_ITEMS = itertools.count()  # unique ids of the images handed to vLLM (see NativePrompt.uuids)


def serves_natively(preset: ModelPreset) -> bool:
    """Whether vLLM must serve ``preset`` with its native Qwen3-VL model (M-RoPE image positions, deepstack)."""
    return preset.image_positions == "mrope"


# ---- names ----------------------------------------------------------------------------------


def native_name(ours: str) -> str | None:
    """The Qwen3-VL checkpoint name of one of our tensors, or None if it is not the backbone's."""
    return ours[len(BACKBONE_PREFIX) :] if ours.startswith(BACKBONE_PREFIX) else None


def native_weights(named: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """The backbone's share of ``named`` under checkpoint names, lazily (a push never holds a second copy)."""
    for name, tensor in named:
        renamed = native_name(name)
        if renamed is not None:
            yield renamed, tensor


def backbone_tensors(named: Iterable[tuple[str, torch.Tensor]], tied: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """``named`` without the output head when ``tied`` (it is the token embedding): the checkpoint and
    a push carry that tensor once, and vLLM ties it again."""
    return ((name, tensor) for name, tensor in named if not (tied and name == HEAD))


# ---- checkpoint -----------------------------------------------------------------------------


def processor_configs(preset: ModelPreset) -> dict[str, dict]:
    """preprocessor_config.json and video_preprocessor_config.json for vLLM's Qwen3-VL processor.

    Pixel bounds of exactly height × width make smart_resize keep a frame of the preset's
    size as it is (both sides are multiples of patch × merge), so the grid, hence the
    token count, is ours. Rescale and mean/std are our ``preprocess_frames``' arithmetic.
    """
    v = preset.vision
    pixels = preset.image_height * preset.image_width
    sizes = {
        "processor_class": "Qwen3VLProcessor",
        "patch_size": v.patch,
        "temporal_patch_size": v.temporal_patch,
        "merge_size": v.merge,
        "image_mean": [v.pixel_mean] * v.channels,
        "image_std": [v.pixel_std] * v.channels,
    }
    image = {
        "image_processor_type": "Qwen2VLImageProcessor",
        **sizes,
        "do_resize": True,
        "resample": 3,  # bicubic, as our resize
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_convert_rgb": True,
        "size": {"shortest_edge": pixels, "longest_edge": pixels},
    }
    # videos are off (limit 0), but vLLM's processor loads a video processor too
    video = {"video_processor_type": "Qwen3VLVideoProcessor", **sizes}
    return {"preprocessor_config.json": image, "video_preprocessor_config.json": video}


def _check_vision_tokens(model: AlpamayoR1) -> None:
    """vLLM's processor finds images by the tokenizer's ``<|image_pad|>``; it must be the model's."""
    tokenizer = model.tokenizer
    expected = {
        SPECIAL_TOKENS["image_pad"]: model.ids.image_pad,
        CHAT_TOKENS["vision_start"]: model.ids.vision_start,
        CHAT_TOKENS["vision_end"]: model.ids.vision_end,
    }
    wrong = {
        t: (tokenizer.convert_tokens_to_ids(t), i)
        for t, i in expected.items()
        if tokenizer.convert_tokens_to_ids(t) != i
    }
    if wrong:
        raise ValueError(f"the tokenizer's vision tokens are not the model's (tokenizer id, model id): {wrong}")


def write_native_model(
    model: AlpamayoR1, directory: Path, dtype: torch.dtype | None = None, shard_bytes: int = SHARD_BYTES
) -> Path:
    """A Qwen3-VL checkpoint directory of ``model``'s backbone that transformers and vLLM load.

    Tensors are cast to ``dtype`` (the engine's; None keeps them) one at a time and
    written in shards of at most ``shard_bytes`` (a larger tensor is a shard alone), so
    the export holds at most one shard besides the model.
    """
    _check_vision_tokens(model)
    directory.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.vlm.config)
    config.architectures = [NATIVE_ARCHITECTURE]
    if dtype is not None:
        config.dtype = dtype
    config.save_pretrained(directory)
    model.tokenizer.save_pretrained(directory)
    for name, content in processor_configs(model.preset).items():
        (directory / name).write_text(json.dumps(content, indent=2))

    weight_map: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    used = total = 0

    def flush() -> None:
        nonlocal shard, used
        if shard:
            file = f"model-{len(set(weight_map.values())) + 1:05d}.safetensors"
            save_file(shard, str(directory / file), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, file))
        shard, used = {}, 0

    tied = bool(model.vlm.config.tie_word_embeddings)
    for name, tensor in native_weights(backbone_tensors(model.state_dict().items(), tied)):
        tensor = tensor.detach().to(dtype or tensor.dtype).cpu().contiguous()
        size = tensor.numel() * tensor.element_size()
        if used + size > shard_bytes:
            flush()
        shard[name] = tensor
        used += size
        total += size
    flush()
    (directory / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return directory


# ---- prompts --------------------------------------------------------------------------------


def collapse_image_runs(token_ids: Sequence[int], image_pad: int) -> tuple[list[int], list[int]]:
    """Each run of ``image_pad`` → one ``image_pad`` (vLLM expands it again from the image's grid).

    Returns the collapsed ids and the runs' lengths, in prompt order.
    """
    collapsed: list[int] = []
    runs: list[int] = []
    previous = None
    for token in token_ids:
        token = int(token)
        if token == image_pad:
            if previous == image_pad:
                runs[-1] += 1
                continue
            runs.append(1)
        collapsed.append(token)
        previous = token
    return collapsed, runs


def vision_embeddings(model: AlpamayoR1, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
    """(image tokens, hidden · (1 + deepstack levels)): our vision tower's output for every image, in
    order, the merged features first and then each deepstack level, as vLLM's tower returns them."""
    out = model.vlm.model.get_image_features(pixel_values, image_grid_thw, return_dict=True)
    levels = [torch.cat(list(out.pooler_output))] + [torch.cat(list(level)) for level in (out.deepstack_features or [])]
    return torch.cat(levels, dim=-1)


@dataclass
class NativePrompt:
    """One prompt for the native engine: token ids with one placeholder per image, and the images' features."""

    token_ids: list[int]
    image_embeds: torch.Tensor  # (image tokens, hidden · (1 + deepstack levels)), images in prompt order
    image_grid_thw: torch.Tensor  # (images, 3)
    # vLLM identifies images by these for its caches; unique per image, so it never hashes the features
    # and never reuses one image's features or cache for another
    uuids: list[str]

    def extended(self, token_ids: Sequence[int]) -> "NativePrompt":
        """The same images, with ``token_ids`` appended to the text (a reasoning, for trajectory tokens)."""
        return NativePrompt(
            self.token_ids + [int(t) for t in token_ids], self.image_embeds, self.image_grid_thw, self.uuids
        )

    def request(self, dtype: torch.dtype) -> dict:
        """vLLM's prompt: token ids + ``multi_modal_data`` of pre-computed image embeddings."""
        return {
            "prompt_token_ids": list(self.token_ids),
            "multi_modal_data": {
                "image": {
                    "image_embeds": self.image_embeds.detach().to(dtype).contiguous(),
                    "image_grid_thw": self.image_grid_thw.cpu(),
                }
            },
            "multi_modal_uuids": {"image": list(self.uuids)},
        }


def native_prompts(
    model: AlpamayoR1, input_ids: torch.Tensor, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor
) -> list[NativePrompt]:
    """The native engine's prompts for a batch of our expanded prompts (B, L) and their images (B · n, …)."""
    batch = input_ids.shape[0]
    if image_grid_thw.shape[0] % batch:
        raise ValueError(f"{image_grid_thw.shape[0]} images do not split evenly over {batch} prompts")
    per_prompt = image_grid_thw.shape[0] // batch
    tokens = (image_grid_thw.prod(-1) // model.preset.vision.merge**2).tolist()
    features = torch.split(vision_embeddings(model, pixel_values, image_grid_thw), tokens)
    prompts = []
    for b in range(batch):
        images = slice(b * per_prompt, (b + 1) * per_prompt)
        ids, runs = collapse_image_runs(input_ids[b].tolist(), model.ids.image_pad)
        if runs != tokens[images]:
            raise ValueError(
                f"prompt {b}: image placeholder runs {runs} do not match its images' token counts {tokens[images]}"
            )
        uuids = [f"redux-image-{next(_IMAGE_ITEMS)}" for _ in range(per_prompt)]
        prompts.append(NativePrompt(ids, torch.cat(features[images]), image_grid_thw[images], uuids))
    return prompts


# ---- engine ---------------------------------------------------------------------------------


class NativeVisionLanguageModel(ServedLanguageModel):
    """``ServedLanguageModel`` over vLLM's native Qwen3-VL: same decoding, pushes and versions;
    prompts are ``NativePrompt``s and a push carries the whole backbone."""

    def __init__(self, model: AlpamayoR1, cfg: VllmConfig, max_model_len: int, seed: int, version: int = 0):
        if not serves_natively(model.preset):
            raise ValueError(
                f"preset {model.preset.name!r} places images at text positions: serve it from prompt embeddings"
            )
        self.dtype = getattr(torch, cfg.dtype)
        self.tied = bool(model.vlm.config.tie_word_embeddings)
        super().__init__(model, cfg, max_model_len, seed, version)

    def _export(self, model: AlpamayoR1, directory: Path, max_model_len: int) -> Path:
        return write_native_model(model, directory, self.dtype)

    def _model_kwargs(self, model: AlpamayoR1) -> dict:
        preset = model.preset
        return {
            "enable_mm_embeds": True,
            # an image limit above 0 keeps vLLM's vision tower, without which it drops deepstack
            "limit_mm_per_prompt": {"image": len(preset.cameras) * preset.frames, "video": 0},
            "skip_mm_profiling": True,  # vLLM's vision tower never runs: images arrive as embeddings
            "mm_processor_cache_gb": 0,  # every image is new to it
            "generation_config": "vllm",  # sampling is set per request, never from generation_config.json
        }

    def _request(self, prompt: NativePrompt) -> dict:
        return prompt.request(self.dtype)

    def load_weights(self, named: dict[str, torch.Tensor], version: int, bucket_tensors: int) -> int:
        """Push the backbone's share of ``named`` in buckets; returns the version now served."""
        items = list(backbone_tensors(named.items(), self.tied))
        buckets = (dict(items[i : i + bucket_tensors]) for i in range(0, len(items), bucket_tensors))
        served = self._rpc("load_served_weights", buckets, version, True)
        self._forget_cached_prompts()
        return served
