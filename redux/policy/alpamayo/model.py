"""Alpamayo-R1's network: a Qwen3-VL backbone and a flow-matching action expert on its cache.

The backbone is transformers' ``Qwen3VLForConditionalGeneration`` (``vlm``), used as is.
The expert (``expert``) is a Qwen3-VL text model of the backbone's depth and KV-head
layout without a token embedding: its 64 action tokens attend, layer by layer, to the
backbone's keys and values of the prompt and reasoning (bidirectionally among
themselves), so the plan is conditioned on everything the backbone read and said. The
cache is handed to the expert detached: the expert loss never trains the backbone (the
learner's ``flow_trains_backbone`` lifts that for experiments).

LCDrive adds two light modules: ``latent_head`` predicts a world-model latent from the
backbone's hidden state and ``latent_in_proj`` turns a latent into the input embedding
of the next position, so latent reasoning is a sequence the backbone itself consumes.
``reasoning_probe`` reads a latent trace and names the closed-set decision it implies.
``plan_units`` holds the per-waypoint units the expert plans in (the identity unless
``policy.plan_units`` says otherwise). ``flow_prediction`` says what the expert's output
means: the flow's velocity (published) or the clean plan, from which the velocity
follows; samplers see a velocity either way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.cache_utils import DynamicCache
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel

from redux.policy.action_space import HORIZON
from redux.policy.alpamayo.action_projection import ActionInProjection, ActionSpaceStats
from redux.policy.alpamayo.plan_units import PlanUnits
from redux.policy.alpamayo.presets import ModelPreset
from redux.policy.flow_matching import velocity_from_data
from redux.sim_bridge.minisim.vocabulary import DECISIONS, FACTORS, META_LANE, META_LATERAL, META_LONGITUDINAL

FLOW_PREDICTIONS = ("velocity", "data")

# Qwen3-VL's own ids, used when the real tokenizer (not buildable here) defines the vocabulary
QWEN_IMAGE_PAD, QWEN_VIDEO_PAD, QWEN_VISION_START, QWEN_VISION_END, QWEN_PAD = 151655, 151656, 151652, 151653, 151643


@dataclass(frozen=True)
class VocabularyIds:
    """The ids the network itself must know (the rest is the prompt builder's business)."""

    vocab_size: int
    image_pad: int = QWEN_IMAGE_PAD
    vision_start: int = QWEN_VISION_START
    vision_end: int = QWEN_VISION_END
    pad: int = QWEN_PAD
    video_pad: int | None = QWEN_VIDEO_PAD  # None: no video token (ours feed frames as images)


def backbone_config(preset: ModelPreset, ids: VocabularyIds) -> Qwen3VLConfig:
    v = preset.vision
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=ids.vocab_size,
            hidden_size=preset.hidden,
            intermediate_size=preset.intermediate,
            num_hidden_layers=preset.layers,
            num_attention_heads=preset.heads,
            num_key_value_heads=preset.kv_heads,
            head_dim=preset.head_dim,
            max_position_embeddings=262_144,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": preset.rope_theta,
                "mrope_section": list(preset.mrope_section),
                "mrope_interleaved": True,
            },
            pad_token_id=ids.pad,
        ),
        vision_config=dict(
            depth=v.depth,
            hidden_size=v.hidden,
            intermediate_size=v.intermediate,
            num_heads=v.heads,
            patch_size=v.patch,
            spatial_merge_size=v.merge,
            temporal_patch_size=v.temporal_patch,
            in_channels=v.channels,
            out_hidden_size=preset.hidden,
            num_position_embeddings=v.position_embeddings,
            deepstack_visual_indexes=list(v.deepstack),
        ),
        image_token_id=ids.image_pad,
        # transformers looks the video placeholder up even without videos; it must be a valid row
        video_token_id=ids.image_pad if ids.video_pad is None else ids.video_pad,
        vision_start_token_id=ids.vision_start,
        vision_end_token_id=ids.vision_end,
        tie_word_embeddings=preset.tie_embeddings,
        attn_implementation="sdpa",
    )


def expert_config(preset: ModelPreset, backbone: Qwen3VLConfig):
    config = copy.deepcopy(backbone.text_config)
    config.hidden_size = preset.expert_hidden
    config.num_attention_heads = preset.expert_heads
    config.intermediate_size = preset.expert_intermediate
    # a 4D float mask (bidirectional action tokens, padded prefix) is honoured by SDPA
    config._attn_implementation = "sdpa"
    return config


class ReasoningProbe(nn.Module):
    """Latent trace → closed-set decision, causal factors and first meta-actions.

    Trained on detached latents so that it reads the reasoning without shaping it.
    """

    def __init__(self, latent_dim: int, blocks: int, hidden: int = 64):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(latent_dim * blocks, hidden), nn.SiLU())
        self.decision = nn.Linear(hidden, len(DECISIONS))
        self.factors = nn.Linear(hidden, len(FACTORS))
        self.meta_actions = nn.ModuleList(nn.Linear(hidden, len(axis)) for axis in (META_LONGITUDINAL, META_LATERAL, META_LANE))

    def forward(self, latents: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(latents.flatten(1))
        return {
            "decision": self.decision(h),
            "factors": self.factors(h),
            "meta_actions": [head(h) for head in self.meta_actions],
        }


class AlpamayoR1(nn.Module):
    def __init__(
        self, preset: ModelPreset, ids: VocabularyIds, plan_units: str = "published", flow_prediction: str = "velocity"
    ):
        super().__init__()
        if flow_prediction not in FLOW_PREDICTIONS:
            raise ValueError(f"flow_prediction must be one of {FLOW_PREDICTIONS}, got {flow_prediction!r}")
        self.flow_prediction = flow_prediction
        self.preset = preset
        self.ids = ids
        config = backbone_config(preset, ids)
        self.vlm = Qwen3VLForConditionalGeneration(config)
        self.expert = Qwen3VLTextModel(expert_config(preset, config))
        del self.expert.embed_tokens  # action tokens come from action_in_proj
        self.action_in_proj = ActionInProjection(
            preset.expert_hidden, preset.action_proj_hidden, preset.action_proj_layers,
            preset.fourier_features, preset.fourier_min_freq, preset.fourier_max_freq,
        )  # fmt: skip
        self.action_out_proj = nn.Linear(preset.expert_hidden, 2)
        self.action_space = ActionSpaceStats()
        self.plan_units = PlanUnits(plan_units)
        self.latent_head = nn.Sequential(
            nn.Linear(preset.hidden, preset.hidden), nn.SiLU(), nn.Linear(preset.hidden, preset.latent_dim)
        )
        self.latent_in_proj = nn.Linear(preset.latent_dim, preset.hidden)
        self.reasoning_probe = ReasoningProbe(preset.latent_dim, preset.latent_blocks)

    # --- backbone -------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, latents: torch.Tensor | None = None, latent_mask: torch.Tensor | None = None):
        """Token embeddings, with the positions in ``latent_mask`` taken from ``latents`` instead."""
        embeds = self.vlm.get_input_embeddings()(input_ids)
        if latents is not None and latent_mask is not None and latent_mask.any():
            lifted = self.latent_in_proj(latents.to(embeds.dtype))
            embeds = embeds.masked_scatter(latent_mask[..., None], lifted[latent_mask].reshape(-1))
        return embeds

    def backbone(
        self,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, DynamicCache]:
        """Run the language model (and, on the prompt, the vision tower); returns last hidden states and cache.

        transformers' Qwen3-VL scatters the vision features into the positions whose
        embedding is the image placeholder's. Positions are always given explicitly so
        that no rope state is kept between calls.
        """
        if cache is None:
            cache = DynamicCache(config=self.vlm.config)
        out = self.vlm.model(
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            attention_mask=attention_mask,
            past_key_values=cache,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            use_cache=True,
        )
        return out.last_hidden_state, out.past_key_values

    def prompt_embeddings(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None, image_grid_thw: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, L, hidden) language-model inputs of a prompt: token embeddings with the vision
        features in the image slots, as Qwen3-VL forms them before its first layer. With
        ``image_positions="text"`` (no deepstack) these alone determine what the language
        model computes, which is what an engine fed prompt embeddings (vLLM) needs."""
        embeds = self.embed(input_ids)
        if pixel_values is None:
            return embeds
        features = self.vlm.model.get_image_features(pixel_values, image_grid_thw, return_dict=True).pooler_output
        features = torch.cat(list(features), dim=0).to(embeds.dtype)
        slots = (input_ids == self.ids.image_pad)[..., None].expand_as(embeds)
        if int(slots[..., 0].sum()) != features.shape[0]:
            raise ValueError(f"{int(slots[..., 0].sum())} image slots in the prompt for {features.shape[0]} vision features")
        return embeds.masked_scatter(slots, features)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.vlm.lm_head(hidden)

    def rope_index(self, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor, image_grid_thw, attention_mask):
        """(3, B, L) positions for a prompt and each row's (B, 1) offset of text positions from indices:
        Qwen3-VL's 3D positions, or consecutive ones (offset 0) for ``image_positions="text"``."""
        if self.preset.image_positions == "text":
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            offsets = torch.zeros(input_ids.shape[0], 1, dtype=torch.long, device=input_ids.device)
            return positions[None].expand(3, -1, -1), offsets
        return self.vlm.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw, attention_mask=attention_mask
        )

    # --- expert ---------------------------------------------------------------------
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, prefix: "ExpertPrefix") -> torch.Tensor:
        """The flow's velocity for noisy plans ``x_t`` (N, 64, 2) in ``plan_units`` at times ``t`` (N,)."""
        out = self.expert_output(x_t, t, prefix)
        if self.flow_prediction == "data":
            return velocity_from_data(out, x_t.float(), t.float())
        return out

    def expert_output(self, x_t: torch.Tensor, t: torch.Tensor, prefix: "ExpertPrefix") -> torch.Tensor:
        """What the expert predicts at (x_t, t): the velocity, or the clean plan (``flow_prediction``)."""
        tokens = self.action_in_proj(x_t, t)
        cache = DynamicCache(ddp_cache_data=prefix.key_values)
        hidden = self.expert(
            inputs_embeds=tokens.to(self.action_out_proj.weight.dtype),
            position_ids=prefix.action_positions,
            past_key_values=cache,
            attention_mask=prefix.attention_mask,
            use_cache=True,
        ).last_hidden_state
        return self.action_out_proj(hidden).float()


@dataclass
class ExpertPrefix:
    """What the expert reads of the backbone: per-layer (keys, values), the mask over them
    for the 64 action queries, and the action tokens' 3D rope positions."""

    key_values: list[tuple[torch.Tensor, torch.Tensor]]
    attention_mask: torch.Tensor  # (N, 1, 64, L + 64) additive
    action_positions: torch.Tensor  # (3, N, 64)

    @classmethod
    def from_cache(
        cls, cache: DynamicCache, valid: torch.Tensor, next_position: torch.Tensor, detach: bool = True
    ) -> "ExpertPrefix":
        """``valid`` (N, L) marks the cache positions the plan may read (prompt and reasoning up to
        and including ``<|traj_future_start|>``); ``next_position`` (N,) the first action token's
        text position. ``detach``: the expert's loss does not reach the backbone (as published)."""
        pairs = [(layer.keys, layer.values) for layer in cache.layers]
        if detach:
            pairs = [(keys.detach(), values.detach()) for keys, values in pairs]
        n, length = valid.shape
        dtype = pairs[0][0].dtype
        blocked = torch.zeros(n, 1, HORIZON, length + HORIZON, dtype=dtype, device=valid.device)
        blocked[:, :, :, :length] = torch.where(valid[:, None, None, :], 0.0, torch.finfo(dtype).min)
        steps = torch.arange(HORIZON, device=valid.device)
        positions = (next_position[:, None] + steps[None, :]).expand(3, n, HORIZON)
        return cls(pairs, blocked, positions)

    def repeat(self, k: int) -> "ExpertPrefix":
        """Each row ``k`` times (samples of one observation share its prefix)."""
        if k == 1:
            return self
        rep = [(a.repeat_interleave(k, 0), b.repeat_interleave(k, 0)) for a, b in self.key_values]
        return ExpertPrefix(rep, self.attention_mask.repeat_interleave(k, 0), self.action_positions.repeat_interleave(k, 1))
