"""The four reasoning modes as decoding grammars of one model, and their sampling loop.

A mode decides three things: the token the assistant turn is pre-filled with, which
tokens may be sampled at each step, and when the reasoning ends (always with
``<|traj_future_start|>``, after which the flow expert plans from the cache, or, with
``policy.plan: trajectory_tokens``, the backbone goes on to decode the plan as 128 discrete
future-trajectory tokens):

- ``none``: no reasoning; the prompt ends with ``<|traj_future_start|>``.
- ``coc``: free Chain-of-Causation text until the stop token.
- ``cfvla``: meta-actions, then ``Action:`` (commit) or ``Thinking:`` + a counterfactual
  critique + revised meta-actions; the model chooses, so the think rate is measured.
- ``lcdrive``: a fixed rhythm of action-proposal blocks (future-trajectory tokens) each
  followed by one latent world-model token. The latent is not sampled: ``latent_head``
  predicts it from the backbone's state and ``latent_in_proj`` feeds it back as the next
  input embedding.

Samples of one observation share its prompt cache (computed once, then repeated K
times). Token log-probabilities are taken under the temperature-scaled distribution
restricted to the mode's allowed tokens (top-p only truncates what is drawn), which is
the distribution a policy-gradient ratio must compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from redux.policy.alpamayo.model import AlpamayoR1, ExpertPrefix
from redux.policy.alpamayo.prompt import PromptBatch
from redux.policy.text_tokenizer import TokenIds
from redux.policy.trajectory_tokens import FUTURE_BINS, FUTURE_TOKENS, decode_future

Mode = Literal["none", "coc", "cfvla", "lcdrive"]
MODES: tuple[str, ...] = ("none", "coc", "cfvla", "lcdrive")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.6
    top_p: float = 0.98
    greedy: bool = False


@dataclass
class Reasoning:
    """Per sample (rows = observations × K): generated ids, their log-probs, latents."""

    tokens: torch.Tensor  # (N, R) with pad after the stop token
    log_probs: torch.Tensor  # (N, R), 0 where nothing was sampled (pads, forced and latent tokens)
    lengths: torch.Tensor  # (N,) tokens up to and including the stop token
    latents: torch.Tensor | None  # (N, blocks, latent_dim) for lcdrive

    def cpu(self) -> "Reasoning":
        latents = None if self.latents is None else self.latents.float().cpu()
        return Reasoning(self.tokens.cpu(), self.log_probs.float().cpu(), self.lengths.cpu(), latents)


@dataclass
class TokenPlan:
    """Plans the backbone decoded as discrete future-trajectory tokens, in place of the expert's cache."""

    codes: torch.Tensor  # (N, 128) bins 0..2999, (accel, curvature) interleaved
    actions: torch.Tensor  # (N, 64, 2) normalised, at the bin centres
    log_probs: torch.Tensor  # (N,) summed over the 128 tokens


def opening_tokens(mode: str, ids: TokenIds) -> list[int]:
    return {
        "none": [ids.traj_future_start],
        "coc": [ids.cot_start],
        "cfvla": [ids.meta_action_start],
        "lcdrive": [ids.vectorized_wm_start],
    }[mode]


def allowed_tokens(mode: str, ids: TokenIds, device: torch.device | str = "cpu", rows: int | None = None) -> torch.Tensor:
    """(V,) bool: what free text in ``mode`` may contain (trajectory tokens never). ``rows``: the
    network's vocabulary when it has more rows than the tokenizer has tokens (never sampled)."""
    allowed = torch.zeros(rows or ids.vocab_size, dtype=torch.bool, device=device)
    allowed[: ids.traj_start] = True  # the BPE text vocabulary comes first
    extra = {
        "coc": [ids.cot_end, ids.traj_future_start],
        "cfvla": [ids.meta_action_start, ids.meta_action_end, ids.action_mark, ids.thinking_mark, ids.traj_future_start],
    }[mode]
    allowed[extra] = True
    return allowed


def future_codes(ids: TokenIds, rows: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(rows,) bool: the 3000 future-trajectory tokens, what proposals and token plans are made of."""
    allowed = torch.zeros(rows, dtype=torch.bool, device=device)
    allowed[ids.traj_start : ids.traj_start + FUTURE_BINS] = True
    return allowed


def prefill(model: AlpamayoR1, prompt: PromptBatch, opening: list[int]):
    """Run the prompt (+ the mode's opening) once; returns hidden states, cache and rope offsets."""
    batch, device = prompt.size, prompt.input_ids.device
    input_ids = torch.cat([prompt.input_ids, torch.tensor(opening, device=device).expand(batch, -1)], dim=1)
    image_mask = torch.cat([prompt.image_mask, torch.zeros(batch, len(opening), dtype=torch.bool, device=device)], dim=1)
    positions, deltas = model.rope_index(input_ids, image_mask.int(), prompt.image_grid_thw, None)
    hidden, cache = model.backbone(
        model.embed(input_ids),
        positions,
        torch.ones_like(input_ids),
        pixel_values=prompt.pixel_values,
        image_grid_thw=prompt.image_grid_thw,
    )
    return hidden, cache, deltas.reshape(-1), input_ids.shape[1]


def reason(
    model: AlpamayoR1,
    ids: TokenIds,
    prompt: PromptBatch,
    mode: str,
    num_samples: int,
    sampling: Sampling,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
) -> tuple[Reasoning, ExpertPrefix | TokenPlan]:
    """Decode ``num_samples`` reasonings per prompt; returns them and the expert's view of the
    cache, or with ``trajectory`` the plans the backbone then decodes as trajectory tokens."""
    if mode not in MODES:
        raise ValueError(f"unknown reasoning mode {mode!r}; known: {', '.join(MODES)}")
    hidden, cache, deltas, length = prefill(model, prompt, opening_tokens(mode, ids))
    batch, k, device = prompt.size, num_samples, prompt.input_ids.device
    if mode == "none":
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
        empty = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
        lengths = torch.zeros(batch * k, dtype=torch.long, device=device)
        reasoning = Reasoning(empty, empty.float(), lengths, None)
        if trajectory:
            cache.batch_repeat_interleave(k)
            rows = [valid.repeat_interleave(k, 0), (length + deltas).repeat_interleave(k), hidden[:, -1].repeat_interleave(k, 0)]
            return reasoning, decode_trajectory(model, ids, cache, *rows, sampling, generator)
        return reasoning, ExpertPrefix.from_cache(cache, valid, length + deltas).repeat(k)

    cache.batch_repeat_interleave(k)
    last = hidden[:, -1].repeat_interleave(k, 0)
    deltas = deltas.repeat_interleave(k)
    n = batch * k
    if mode == "lcdrive":
        script = _LatentScript(model, ids, device)
    else:
        script = _FreeText(mode, ids, model.preset.max_reasoning_tokens, device, model.ids.vocab_size)
    tokens, log_probs, alive_mask = [], [], []
    alive = torch.ones(n, dtype=torch.bool, device=device)
    prompt_valid = torch.ones(n, length, dtype=torch.bool, device=device)
    latents = []
    stop_hidden = torch.zeros_like(last)  # the state that predicts each row's first trajectory token
    for step in range(script.max_steps):
        token, log_prob, latent = script.next(step, model.logits(last), last, sampling, generator)
        token = torch.where(alive, token, ids.endoftext)
        stopping = alive & (token == ids.traj_future_start)
        log_probs.append(torch.where(alive, log_prob, 0.0))
        tokens.append(token)
        alive_mask.append(alive.clone())
        embeds = model.embed(token[:, None])
        if latent is not None:
            latents.append(latent)
            embeds = model.latent_in_proj(latent)[:, None].to(embeds.dtype)
        attention = torch.cat([prompt_valid, torch.stack(alive_mask, 1)], dim=1)
        position = (length + step + deltas).reshape(1, n, 1).expand(3, n, 1)
        hidden, cache = model.backbone(embeds, position, attention.long(), cache)
        last = hidden[:, -1]
        stop_hidden = torch.where(stopping[:, None], last, stop_hidden)
        alive = alive & ~stopping
        if not alive.any():
            break
    tokens, log_probs = torch.stack(tokens, 1), torch.stack(log_probs, 1)
    valid = torch.cat([prompt_valid, torch.stack(alive_mask, 1)], dim=1)
    lengths = torch.stack(alive_mask, 1).sum(1)
    reasoning = Reasoning(tokens, log_probs, lengths, torch.stack(latents, 1) if latents else None)
    if trajectory:
        return reasoning, decode_trajectory(model, ids, cache, valid, length + lengths + deltas, stop_hidden, sampling, generator)
    return reasoning, ExpertPrefix.from_cache(cache, valid, length + lengths + deltas)


def decode_trajectory(
    model: AlpamayoR1,
    ids: TokenIds,
    cache,
    valid: torch.Tensor,
    next_position: torch.Tensor,
    hidden: torch.Tensor,
    sampling: Sampling,
    generator: torch.Generator | None = None,
) -> TokenPlan:
    """The 128 future-trajectory tokens each row says after its reasoning, as its plan.

    ``cache`` holds each row's prompt and reasoning (``valid`` marks its real entries),
    ``hidden`` is the state after its ``<|traj_future_start|>`` and ``next_position`` the
    position the first code takes: training puts the codes right there.
    """
    n = hidden.shape[0]
    allowed = future_codes(ids, model.ids.vocab_size, hidden.device)
    codes, log_probs = [], []
    for step in range(FUTURE_TOKENS):
        token, log_prob = sample_token(model.logits(hidden), allowed, sampling, generator)
        codes.append(token)
        log_probs.append(log_prob)
        if step == FUTURE_TOKENS - 1:
            break
        valid = torch.cat([valid, torch.ones(n, 1, dtype=torch.bool, device=valid.device)], dim=1)
        position = (next_position + step).reshape(1, n, 1).expand(3, n, 1)
        out, cache = model.backbone(model.embed(token[:, None]), position, valid.long(), cache)
        hidden = out[:, -1]
    codes = torch.stack(codes, 1) - ids.traj_start
    actions = torch.from_numpy(decode_future(codes.cpu().numpy())).to(hidden.device)
    return TokenPlan(codes, actions, torch.stack(log_probs, 1).sum(1))


def replay(
    model: AlpamayoR1, ids: TokenIds, prompt: PromptBatch, mode: str, tokens: torch.Tensor, lengths: torch.Tensor
) -> ExpertPrefix:
    """The expert's view of a reasoning decoded elsewhere (by vLLM): see :func:`_replay`."""
    return _replay(model, ids, prompt, mode, tokens, lengths)[0]


def score_reasoning(
    model: AlpamayoR1,
    ids: TokenIds,
    prompt: PromptBatch,
    mode: str,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    sampling: Sampling,
) -> torch.Tensor:
    """(B·K, R) log-probabilities this model gives ``tokens`` under ``sampling`` (0 past each length
    and on the forced stop token at the end of the budget): what decoding would have reported."""
    _, hidden_before = _replay(model, ids, prompt, mode, tokens, lengths)
    logits = model.logits(hidden_before).float()
    allowed = allowed_tokens(mode, ids, logits.device, logits.shape[-1])
    log_p = sampling_log_probs(logits.masked_fill(~allowed, float("-inf")), sampling)
    scored = log_p.gather(-1, tokens[..., None])[..., 0]
    steps = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    sampled = (steps < lengths[:, None]) & (steps < model.preset.max_reasoning_tokens - 1)
    return torch.where(sampled, scored, 0.0)


def _replay(model, ids, prompt, mode, tokens, lengths) -> tuple[ExpertPrefix, torch.Tensor]:
    """The prompt is prefilled once, each row's cache is repeated for its samples, and the
    tokens (B·K, R), padded after ``lengths``, run through in one causal pass at the
    positions decoding gave them. Returns the expert's view and the hidden state before
    each token (the one that predicted it)."""
    if mode == "lcdrive":
        raise ValueError("lcdrive reasoning interleaves latents from the light head and is decoded in torch only")
    hidden, cache, deltas, length = prefill(model, prompt, opening_tokens(mode, ids))
    k = tokens.shape[0] // prompt.size
    cache.batch_repeat_interleave(k)
    deltas = deltas.repeat_interleave(k)
    before = hidden[:, -1:].repeat_interleave(k, 0)
    n, r = tokens.shape
    steps = torch.arange(r, device=tokens.device)[None, :]
    alive = steps < lengths[:, None]
    valid = torch.cat([torch.ones(n, length, dtype=torch.bool, device=tokens.device), alive], dim=1)
    if r:
        positions = (length + steps + deltas[:, None]).expand(3, n, r)
        hidden, cache = model.backbone(model.embed(tokens), positions, valid.long(), cache)
        before = torch.cat([before, hidden[:, :-1]], dim=1)
    return ExpertPrefix.from_cache(cache, valid, length + lengths + deltas), before[:, :r]


def sample_token(logits: torch.Tensor, allowed: torch.Tensor, sampling: Sampling, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row among ``allowed``; returns it and its log-probability under the
    distribution it was drawn from (see :func:`sampling_log_probs`)."""
    logits = logits.float().masked_fill(~allowed, float("-inf"))
    if sampling.greedy:
        token = logits.argmax(-1)
        return token, torch.zeros(len(token), device=token.device)
    log_p = sampling_log_probs(logits, sampling)
    token = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(1)
    return token, log_p.gather(1, token[:, None]).squeeze(1)


def sampling_log_probs(masked_logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """(N, V) log-probabilities of the distribution a token is drawn from: temperature, then the
    smallest nucleus whose mass reaches ``top_p`` (always the first token), renormalised.

    This is vLLM's ``processed_logprobs`` too, so both engines report the same number
    for the same token, and it is the behaviour policy's probability GRPO's ratio needs.
    """
    logits = masked_logits / sampling.temperature
    if sampling.top_p < 1.0:
        probs = torch.softmax(logits, dim=-1)
        ordered, order = probs.sort(dim=-1, descending=True)
        drop = ordered.cumsum(-1) - ordered >= sampling.top_p
        logits = logits.scatter(-1, order, logits.gather(-1, order).masked_fill(drop, float("-inf")))
    return torch.log_softmax(logits, dim=-1)


class _FreeText:
    """coc / cfvla: sample among the mode's tokens; the last step is forced to the stop token."""

    def __init__(self, mode: str, ids: TokenIds, max_tokens: int, device: torch.device, rows: int):
        self.allowed = allowed_tokens(mode, ids, device, rows)
        self.stop_only = torch.zeros_like(self.allowed)
        self.stop_only[ids.traj_future_start] = True
        self.max_steps = max_tokens

    def next(self, step, logits, hidden, sampling, generator):
        allowed = self.stop_only if step == self.max_steps - 1 else self.allowed
        token, log_prob = sample_token(logits, allowed, sampling, generator)
        return token, log_prob, None


class _LatentScript:
    """lcdrive: [proposal tokens × P, latent] × blocks, then the closing tokens, all on a fixed beat."""

    def __init__(self, model: AlpamayoR1, ids: TokenIds, device: torch.device):
        preset = model.preset
        self.model, self.ids, self.device = model, ids, device
        self.block = preset.proposal_tokens + 1
        self.blocks = preset.latent_blocks
        self.max_steps = self.blocks * self.block + 2
        self.proposal = future_codes(ids, model.ids.vocab_size, device)

    def next(self, step, logits, hidden, sampling, generator):
        n = logits.shape[0]
        if step >= self.blocks * self.block:
            closing = self.ids.vectorized_wm_end if step == self.blocks * self.block else self.ids.traj_future_start
            return torch.full((n,), closing, device=self.device), torch.zeros(n, device=self.device), None
        if step % self.block == self.block - 1:
            latent = self.model.latent_head(hidden)
            return torch.full((n,), self.ids.vectorized_wm, device=self.device), torch.zeros(n, device=self.device), latent
        token, log_prob = sample_token(logits, self.proposal, sampling, generator)
        return token, log_prob, None
