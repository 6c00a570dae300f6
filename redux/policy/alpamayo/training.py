"""One teacher-forced pass over prompt + target reasoning, and every loss it yields.

The backbone reads the prompt and the target tokens in one causal pass (latent positions
take the target latents as input embeddings). From that pass come: next-token
cross-entropy per target category, the latent head's regression onto the latent
targets, and the KV cache the flow expert reads — detached (unless the learner lets the
flow loss train the backbone), and masked to the prefix up
to ``<|traj_future_start|>`` so the discrete trajectory tokens that follow it (trained
by cross-entropy only) never leak into the continuous plan. The probe reads the target
latents, detached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from redux.policy.alpamayo.model import AlpamayoR1, ExpertPrefix
from redux.policy.alpamayo.prompt import PromptBatch
from redux.policy.alpamayo.targets import CATEGORY_NAMES, IGNORE, LATENT
from redux.policy.flow_matching import data_prediction_loss, flow_matching_loss, noisy_actions, sample_training_time


@dataclass
class TeacherForcedBatch:
    prompt: PromptBatch  # prompt + the mode's opening token
    target_ids: torch.Tensor  # (B, R)
    target_categories: torch.Tensor  # (B, R) int, IGNORE on padding
    target_actions: torch.Tensor  # (B, 64, 2) normalised
    latent_targets: torch.Tensor | None = None  # (B, blocks, D)
    decision: torch.Tensor | None = None  # (B,) probe labels
    factors: torch.Tensor | None = None  # (B, F) bool
    meta_actions: torch.Tensor | None = None  # (B, 3)


@dataclass
class TeacherForcedPass:
    sequence: torch.Tensor  # (B, L + R) prompt then targets
    attention: torch.Tensor  # (B, L + R) bool, False on the targets' padding
    predicting: torch.Tensor  # (B, R, H): the hidden state that predicts each target token
    cache: object
    deltas: torch.Tensor  # (B,) rope offsets


def teacher_forced_pass(model: AlpamayoR1, batch: TeacherForcedBatch) -> TeacherForcedPass:
    """The backbone's one causal pass over prompt + targets, padding masked out."""
    prompt, targets = batch.prompt, batch.target_ids
    b, length = prompt.input_ids.shape
    sequence = torch.cat([prompt.input_ids, targets], dim=1)
    real = batch.target_categories != IGNORE
    attention = torch.cat([torch.ones(b, length, dtype=torch.bool), real], dim=1)
    image_mask = torch.cat([prompt.image_mask, torch.zeros_like(targets, dtype=torch.bool)], dim=1)
    positions, deltas = model.rope_index(sequence, image_mask.int(), prompt.image_grid_thw, attention.long())

    latent_slots = torch.cat([torch.zeros(b, length, dtype=torch.bool), batch.target_categories == LATENT], dim=1)
    latent_inputs = None
    if batch.latent_targets is not None and latent_slots.any():
        latent_inputs = torch.zeros(b, sequence.shape[1], batch.latent_targets.shape[-1])
        latent_inputs[latent_slots] = batch.latent_targets.reshape(-1, batch.latent_targets.shape[-1])[
            : int(latent_slots.sum())
        ].to(latent_inputs.dtype)
    embeds = model.embed(sequence, latent_inputs, latent_slots)
    hidden, cache = model.backbone(
        embeds, positions, attention.long(), pixel_values=prompt.pixel_values, image_grid_thw=prompt.image_grid_thw
    )
    # position i predicts token i + 1: the target tokens are predicted from length-1 … length+R-2
    predicting = hidden[:, length - 1 : length - 1 + targets.shape[1]]
    return TeacherForcedPass(sequence, attention, predicting, cache, deltas.reshape(-1))


def teacher_forced_losses(
    model: AlpamayoR1,
    batch: TeacherForcedBatch,
    stop_id: int,
    generator=None,
    flow_trains_backbone: bool = False,
    flow_samples: int = 1,
) -> dict[str, torch.Tensor]:
    """Per-part losses (unweighted); token losses are per category, averaged over that category's tokens.
    ``flow_trains_backbone``: the expert reads the cache with its gradient (published: detached).
    ``flow_samples``: noise draws (and flow times) per decision, each a row of the expert on the same prefix."""
    forced = teacher_forced_pass(model, batch)
    sequence, attention, predicting = forced.sequence, forced.attention, forced.predicting
    targets, b, length = batch.target_ids, batch.target_ids.shape[0], batch.prompt.input_ids.shape[1]
    real = batch.target_categories != IGNORE
    losses: dict[str, torch.Tensor] = {}
    token_cats = batch.target_categories.long()
    scored = real & (token_cats != LATENT)
    if scored.any():
        logits = model.logits(predicting[scored])
        per_token = F.cross_entropy(logits.float(), targets[scored], reduction="none")
        cats = token_cats[scored]
        for c in cats.unique().tolist():
            losses[f"ce_{CATEGORY_NAMES[c]}"] = per_token[cats == c].mean()

    if batch.latent_targets is not None and (token_cats == LATENT).any():
        predicted = model.latent_head(predicting[token_cats == LATENT])
        wanted = batch.latent_targets.reshape(-1, batch.latent_targets.shape[-1])[: predicted.shape[0]]
        losses["latent"] = F.mse_loss(predicted.float(), wanted.float())
        if batch.decision is not None:
            probe = model.reasoning_probe(batch.latent_targets.detach().float())
            probe_loss = F.cross_entropy(probe["decision"], batch.decision.long())
            if batch.factors is not None:
                probe_loss = probe_loss + F.binary_cross_entropy_with_logits(probe["factors"], batch.factors.float())
            if batch.meta_actions is not None:
                for axis, logits in enumerate(probe["meta_actions"]):
                    probe_loss = probe_loss + F.cross_entropy(logits, batch.meta_actions[:, axis].long())
            losses["probe"] = probe_loss

    # the expert reads the prompt and reasoning up to and including <|traj_future_start|>
    index = torch.arange(sequence.shape[1])
    is_stop = (sequence == stop_id) & (index >= length - 1)
    stop_at = torch.where(is_stop.any(1), is_stop.int().argmax(1), torch.full((b,), length - 1))
    valid = attention & (index[None, :] <= stop_at[:, None])
    prefix = ExpertPrefix.from_cache(forced.cache, valid, stop_at + 1 + forced.deltas, detach=not flow_trains_backbone)
    losses["flow"] = flow_loss(model, batch.target_actions, prefix, flow_samples, generator)
    return losses


def flow_loss(
    model: AlpamayoR1, plans: torch.Tensor, prefix: ExpertPrefix, samples: int = 1, generator=None
) -> torch.Tensor:
    """The expert's loss on published-normalised ``plans`` (N, 64, 2) read from ``prefix``, in the
    model's plan units and ``flow_prediction``, with ``samples`` noise draws and flow times per plan."""
    x = model.plan_units.to_flow(plans.float()).repeat_interleave(samples, 0)
    noise = torch.randn(x.shape, generator=generator)
    t = sample_training_time(len(x), generator)
    predicted = model.expert_output(noisy_actions(x, noise, t), t, prefix.repeat(samples))
    if model.flow_prediction == "data":
        return data_prediction_loss(predicted, x)
    return flow_matching_loss(predicted, x, noise)
