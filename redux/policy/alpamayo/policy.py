"""The Alpamayo policy behind the common ``Policy`` interface: observations in, K plans out.

One ``act`` call serves many sessions at once: their prompts are prefilled as one batch,
each observation's cache is shared by its K samples, reasoning is decoded for all B·K
rows together, and the flow expert plans on that same cache (no second pass over the
prompt). Greedy acting takes the most likely tokens and integrates the flow from zero
noise; sampling draws tokens at the configured temperature and plans with the SDE
sampler, whose per-step Gaussians give the plan's log-probability (GRPO needs it).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from redux.config import PolicyConfig
from redux.policy.action_space import clip_to_bounds, denormalise, estimate_speed, integrate
from redux.eval.reasoning_consistency import decision_consistent, meta_actions_consistent
from redux.policy.alpamayo.explain import stated_reasoning
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.prompt import PromptBuilder
from redux.policy.alpamayo.reasoning import Sampling, TokenPlan, reason
from redux.policy.alpamayo.targets import plan_meta_actions
from redux.policy.flow_matching import euler_sample, sde_sample
from redux.policy.interface import PolicyOutput
from redux.sim_bridge.session import Observation


def model_inputs(prompts: PromptBuilder, observations: list[Observation]) -> dict[str, np.ndarray]:
    """What a record stores to replay this decision: frames at the model's size, ego history."""
    from redux.policy.image_processing import resize_frames

    p = prompts.preset
    frames = np.stack([prompts.frames_of(o.cameras) for o in observations])
    frames = resize_frames(frames.reshape(-1, *frames.shape[2:]), p.image_height, p.image_width)
    return {
        "frames": frames.reshape(len(observations), -1, *frames.shape[1:]),
        "ego_history": np.stack([o.ego_history for o in observations]).astype(np.float32),
    }


class AlpamayoPolicy:
    def __init__(self, model: AlpamayoR1, tokenizer, cfg: PolicyConfig, seed: int = 0):
        from redux.policy.text_tokenizer import token_ids

        self.model = model.eval()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.ids = token_ids(tokenizer)
        self.prompts = PromptBuilder(model.preset, tokenizer, self.ids)
        self.weight_version = 0
        self.device = model.action_out_proj.weight.device
        self.generator = torch.Generator(self.device).manual_seed(seed)

    @property
    def flow_steps(self) -> int:
        return self.cfg.flow_steps or self.model.preset.flow_steps

    @property
    def preset(self):
        return self.model.preset

    def model_inputs(self, observations: list[Observation]) -> dict[str, np.ndarray]:
        return model_inputs(self.prompts, observations)

    def act(self, observations: list[Observation], num_samples: int = 1, greedy: bool = False) -> PolicyOutput:
        start = time.perf_counter()
        inputs = self.model_inputs(observations)
        prompt = self.prompts.build(inputs["frames"], inputs["ego_history"]).to(self.device)
        sampling = Sampling(self.cfg.temperature, self.cfg.top_p, greedy)
        b, k = len(observations), num_samples
        with torch.inference_mode():
            prepared = self._clock()
            reasoning, prefix = self._reason(prompt, k, sampling)
            reasoned = self._clock()

            plans, flow_log_probs = self._plan(prefix, b * k, greedy)
            planned = self._clock()
        stated = None
        if self.cfg.reasoning != "none":  # before the move to the host: the lcdrive probe runs where the model is
            stated = stated_reasoning(self.model, self.tokenizer, self.ids, self.cfg.reasoning, reasoning)
        reasoning, plans, flow_log_probs = reasoning.cpu(), plans.float().cpu(), flow_log_probs.float().cpu()

        actions = clip_to_bounds(denormalise(plans.numpy().reshape(b, k, 64, 2)))
        speed = estimate_speed(inputs["ego_history"][..., :2])
        poses = integrate(actions, speed[:, None])
        token_log_probs = reasoning.log_probs.sum(1).reshape(b, k).numpy()
        flow = flow_log_probs.reshape(b, k).numpy()
        extras = {
            "token_log_probs": token_log_probs.astype(np.float32),
            "flow_log_probs": flow.astype(np.float32),
            "reasoning_ids": reasoning.tokens.reshape(b, k, -1).numpy(),
            "reasoning_lengths": reasoning.lengths.reshape(b, k).numpy(),
            "thinking": (reasoning.tokens == self.ids.thinking_mark).any(1).reshape(b, k).numpy(),
        }
        if reasoning.latents is not None:
            extras["latents"] = reasoning.latents.reshape(b, k, *reasoning.latents.shape[1:]).numpy()
        texts = [""] * (b * k)
        if stated is not None:
            texts = stated.texts
            extras.update(self._consistency(stated, plans.numpy().reshape(b, k, 64, 2), speed))
        done = time.perf_counter()
        timings = {
            "prepare_ms": (prepared - start) * 1e3,
            "reasoning_ms": (reasoned - prepared) * 1e3,
            "flow_ms": (planned - reasoned) * 1e3,
            "total_ms": (done - start) * 1e3,
            "decision_ms": (done - start) * 1e3 / b,
        }
        return PolicyOutput(
            actions.astype(np.float32),
            poses,
            (token_log_probs + flow).astype(np.float32),
            self.weight_version,
            timings,
            reasoning=texts,
            extras=extras,
        )

    def _reason(self, prompt, num_samples: int, sampling: Sampling):
        """Reasoning tokens and the expert's view of the cache (or the plans decoded as trajectory
        tokens); the vLLM engine decodes elsewhere."""
        trajectory = self.cfg.plan == "trajectory_tokens"
        return reason(self.model, self.ids, prompt, self.cfg.reasoning, num_samples, sampling, self.generator, trajectory)

    def _plan(self, prefix, n: int, greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 64, 2) normalised plans from the flow expert on ``prefix``, and their log-probs (of the
        sampling chain in the expert's plan units: GRPO compares them only within one model's units);
        plans already decoded as trajectory tokens come with their tokens' log-probs."""
        if isinstance(prefix, TokenPlan):
            return prefix.actions, prefix.log_probs

        def velocity(x, t):
            return self.model.velocity(x, t, prefix)

        units = self.model.plan_units
        if greedy:
            start = torch.zeros(n, 64, 2, device=self.device)
            return units.from_flow(euler_sample(velocity, start, self.flow_steps)), torch.zeros(n, device=self.device)
        noise = torch.randn(n, 64, 2, generator=self.generator, device=self.device)
        sample = sde_sample(velocity, noise, self.flow_steps, self.cfg.sde_noise, self.generator)
        return units.from_flow(sample.actions), sample.log_prob

    def _clock(self) -> float:
        """Now, once the accelerator has finished what was queued (kernels run asynchronously)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _consistency(self, stated, plans: np.ndarray, speed: np.ndarray) -> dict[str, np.ndarray]:
        """Stated decision / meta-actions per sample, the plan's own meta-actions, and whether they agree."""
        b, k = plans.shape[:2]
        plan_meta = np.array([plan_meta_actions(plans[i, j], float(speed[i]))[0][2:] for i in range(b) for j in range(k)])
        if self.cfg.reasoning == "cfvla":
            agree = [meta_actions_consistent(s, p) for s, p in zip(stated.meta_actions, plan_meta)]
        else:
            agree = [decision_consistent(int(d), p) for d, p in zip(stated.decision, plan_meta)]
        return {
            "decision": stated.decision.reshape(b, k),
            "stated_meta_actions": stated.meta_actions.reshape(b, k, 3),
            "plan_meta_actions": plan_meta.reshape(b, k, 3),
            "consistent": np.asarray(agree, dtype=bool).reshape(b, k),
        }

    def load_weights(self, named: dict[str, torch.Tensor], version: int) -> None:
        self.model.load_state_dict(named, strict=True)
        self.weight_version = version

    def named_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}
