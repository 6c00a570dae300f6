"""The Alpamayo policy with its reasoning decoded by vLLM: same ``act``, same ``PolicyOutput``.

Per decision: the torch replica builds the prompt and its input embeddings (vision
features in the image slots); vLLM decodes K reasonings per observation from those
embeddings under the mode's token grammar. Real presets (M-RoPE images, deepstack) go
to vLLM's native Qwen3-VL instead, as token ids plus the torch vision tower's features
(``native_vl``). Then the flow expert needs the backbone's
cache, which vLLM does not hand out, so the torch replica re-prefills prompt +
reasoning in one pass (``reasoning.replay``) and plans on it. ``redux bench policy``
measures this against decoding the discrete trajectory tokens instead; the config's
default and the reason for it are in docs/benchmarks.md.

``act`` and ``load_weights`` are exclusive, so an output is computed from one version's
weights end to end (vLLM's decode and torch's re-prefill and flow) and says which; a
push that arrives mid-decision waits for it, and goes before any decision queued
behind it (fresh weights first: a busy replica would otherwise starve its pushes).

With ``policy.vllm.weight_transfer`` nccl or ipc, ``load_weights`` updates the torch
replica only and the learner sends the engine its language model directly
(``gpu_weight_transfer``, through ``self.receiver``); ``served_version`` then says which
version the engine holds, which may trail or lead the torch replica's for a moment.

``lcdrive`` interleaves latent tokens that the light head computes from hidden states
mid-decode, which vLLM does not expose; that mode is refused here.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import torch

from redux.config import PolicyConfig
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.policy import AlpamayoPolicy
from redux.policy.alpamayo.reasoning import (
    Reasoning,
    Sampling,
    TokenPlan,
    allowed_tokens,
    opening_tokens,
    reason,
    replay,
)
from redux.policy.trajectory_tokens import FUTURE_BINS, FUTURE_TOKENS, decode_future
from redux.policy.vllm.native_vl import NativeVisionLanguageModel, native_prompts, serves_natively
from redux.policy.vllm.served_engine import ServedLanguageModel

HEADROOM_TOKENS = 8  # the opening tokens and a forced stop token


class VllmAlpamayoPolicy(AlpamayoPolicy):
    def __init__(
        self, model: AlpamayoR1, tokenizer, cfg: PolicyConfig, seed: int = 0, served: ServedLanguageModel | None = None
    ):
        """``served``: an engine already serving ``model`` (several decoding modes, one engine)."""
        if cfg.reasoning == "lcdrive":
            raise ValueError(
                "policy.engine=vllm cannot decode lcdrive: its latent tokens come from hidden states vLLM does not "
                "expose; use policy.engine=torch"
            )
        super().__init__(model, tokenizer, cfg, seed=seed)
        preset = model.preset
        # room for the prompt, the reasoning and, whichever plan is configured, the trajectory tokens
        needed = self.prompts.length + preset.max_reasoning_tokens + HEADROOM_TOKENS + FUTURE_TOKENS
        max_len = cfg.vllm.max_model_len or needed
        # M-RoPE image positions and deepstack: vLLM's native Qwen3-VL (native_vl); else prompt embeddings
        self.native = serves_natively(preset)
        engine = NativeVisionLanguageModel if self.native else ServedLanguageModel
        self.served = served or engine(model, cfg.vllm, max_len, seed=seed, version=self.weight_version)
        self._turn = threading.Condition()
        self._busy = False
        self._pushes_waiting = 0
        self.receiver = None
        if cfg.vllm.weight_transfer != "in_process":
            from redux.policy.vllm.gpu_weight_transfer import ReplicaWeightReceiver

            # the learner's transfers take the push turn, as load_weights does
            self.receiver = ReplicaWeightReceiver(self.served, lambda: self._exclusive(push=True))

    @contextmanager
    def _exclusive(self, push: bool):
        with self._turn:
            self._pushes_waiting += push
            while self._busy or (not push and self._pushes_waiting):
                self._turn.wait()
            self._pushes_waiting -= push
            self._busy = True
        try:
            yield
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()

    @property
    def served_version(self) -> int:
        with self._exclusive(push=False):
            return self.served.served_version()

    def act(self, observations, num_samples: int = 1, greedy: bool = False):
        with self._exclusive(push=False):
            return super().act(observations, num_samples=num_samples, greedy=greedy)

    def load_weights(self, named: dict[str, torch.Tensor], version: int) -> None:
        with self._exclusive(push=True):
            super().load_weights(named, version)
            if self.receiver is not None:
                return  # nccl/ipc: the learner streams the language model into the engine itself
            served = self.served.load_weights(self.model.state_dict(), version, self.cfg.vllm.bucket_tensors)
            if served != version:
                raise RuntimeError(f"vLLM reports version {served} after a push of {version}")

    def _reason(self, prompt, num_samples: int, sampling: Sampling):
        mode = self.cfg.reasoning
        if mode == "none":  # nothing to decode: the torch prefill is the whole reasoning
            trajectory = self.cfg.plan == "trajectory_tokens"
            return reason(self.model, self.ids, prompt, mode, num_samples, sampling, self.generator, trajectory)
        opening = torch.tensor(opening_tokens(mode, self.ids)).expand(prompt.size, -1)
        input_ids = torch.cat([prompt.input_ids, opening], dim=1)
        served_prompts = self._served_prompts(input_ids, prompt)
        budget = self.model.preset.max_reasoning_tokens
        seeds = torch.randint(0, 2**31 - 1, (prompt.size,), generator=self.generator).tolist()
        decoded = self.served.generate(
            served_prompts,
            num_samples,
            sampling,
            allowed_token_ids=torch.nonzero(allowed_tokens(mode, self.ids)).flatten().tolist(),
            stop_token_id=self.ids.traj_future_start,
            max_tokens=budget - 1,  # the last step is the forced stop, as in torch decoding
            seeds=seeds,
        )
        rows = [sample for per_prompt in decoded for sample in per_prompt]
        tokens = torch.full((len(rows), budget), self.ids.endoftext, dtype=torch.long)
        log_probs = torch.zeros(len(rows), budget)
        lengths = torch.zeros(len(rows), dtype=torch.long)
        for i, sample in enumerate(rows):
            ids = list(sample.token_ids)
            if not ids or ids[-1] != self.ids.traj_future_start:
                ids.append(self.ids.traj_future_start)  # forced: probability one, log-prob zero
            tokens[i, : len(ids)] = torch.tensor(ids)
            if not sampling.greedy:
                log_probs[i, : len(sample.log_probs)] = torch.tensor(sample.log_probs)
            lengths[i] = len(ids)
        width = int(lengths.max())
        tokens, log_probs = tokens[:, :width], log_probs[:, :width]
        reasoning = Reasoning(tokens, log_probs, lengths, None)
        if self.cfg.plan == "trajectory_tokens":
            return reasoning, self._decode_trajectories(served_prompts, reasoning, num_samples, sampling)
        return reasoning, replay(self.model, self.ids, prompt, mode, tokens, lengths)

    def _served_prompts(self, input_ids: torch.Tensor, prompt) -> list:
        """What the engine decodes from, one per row: token ids with the images' vision features
        (native Qwen3-VL), or the prompt embeddings (the language-model export)."""
        if self.native:
            return native_prompts(self.model, input_ids, prompt.pixel_values, prompt.image_grid_thw)
        return list(self.model.prompt_embeddings(input_ids, prompt.pixel_values, prompt.image_grid_thw))

    def _decode_trajectories(self, served_prompts, reasoning: Reasoning, k: int, sampling: Sampling) -> TokenPlan:
        """Each sample's plan as 128 future tokens, decoded after its own prompt + reasoning."""
        rows = []
        for i in range(reasoning.tokens.shape[0]):
            said = reasoning.tokens[i, : reasoning.lengths[i]]
            if self.native:
                rows.append(served_prompts[i // k].extended(said.tolist()))
            else:
                rows.append(torch.cat([served_prompts[i // k], self.model.embed(said[None])[0]], dim=0))
        first = self.ids.traj_start
        seeds = torch.randint(0, 2**31 - 1, (len(rows),), generator=self.generator).tolist()
        decoded = self.served.generate(
            rows, 1, sampling,
            allowed_token_ids=list(range(first, first + FUTURE_BINS)),
            stop_token_id=self.ids.traj_future_end,  # never allowed: exactly max_tokens come out
            max_tokens=FUTURE_TOKENS, seeds=seeds,
        )  # fmt: skip
        codes = np.array([d[0].token_ids for d in decoded]) - first
        if codes.shape != (len(rows), FUTURE_TOKENS):
            raise RuntimeError(f"vLLM returned trajectory codes of shape {codes.shape}, not ({len(rows)}, {FUTURE_TOKENS})")
        log_probs = [0.0 if sampling.greedy else sum(d[0].log_probs) for d in decoded]
        return TokenPlan(torch.from_numpy(codes), torch.from_numpy(decode_future(codes)), torch.tensor(log_probs))
