"""Training targets of every reasoning mode, as token ids with a category per token.

The mode's opening token (forced at inference), then what the model should say, up to and including
``<|traj_future_start|>`` (where the expert takes over), optionally followed directly by the
128 discrete future-trajectory tokens and ``<|traj_future_end|>``, then padding. Each target token carries
a category so that the objective can weight CoC text, meta-actions, critique and
trajectory tokens separately (CF-VLA trains traj : meta : critique at 1 : 10 : 10).

The targets are built where the labels are (the rollout actor) and travel as padded
int arrays in the record, so the learner needs no tokenizer to train.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.policy.action_space import integrate
from redux.policy.alpamayo.reasoning import opening_tokens
from redux.policy.reasoning_text import ACTION_MARK, THINKING_MARK, coc_text, critique_text, meta_action_text
from redux.policy.text_tokenizer import TokenIds
from redux.policy.trajectory_tokens import encode_future
from redux.sim_bridge.minisim.meta_actions import segment_meta_actions

# token categories (index into the objective's weights); IGNORE marks padding
IGNORE, STRUCTURE, COC, META_ACTION, CRITIQUE, TRAJECTORY, PROPOSAL, LATENT = range(8)
CATEGORY_NAMES = ("ignore", "structure", "coc", "meta_action", "critique", "trajectory", "proposal", "latent")


@dataclass
class ReasoningTarget:
    ids: np.ndarray  # (R,) int64, padded
    categories: np.ndarray  # (R,) int8, IGNORE on padding


class TargetBuilder:
    def __init__(self, tokenizer, ids: TokenIds, mode: str, max_tokens: int, trajectory_tokens: bool,
                 latent_blocks: int = 3, proposal_tokens: int = 10):  # fmt: skip
        self.tokenizer, self.ids, self.mode = tokenizer, ids, mode
        self.max_tokens = max_tokens
        self.trajectory_tokens = trajectory_tokens
        self.latent_blocks, self.proposal_tokens = latent_blocks, proposal_tokens

    @property
    def length(self) -> int:
        """Fixed padded length of a target, so records stack."""
        if self.mode == "lcdrive":
            body = self.latent_blocks * (self.proposal_tokens + 1) + 2
        elif self.mode == "none":
            body = 0
        else:
            body = self.max_tokens
        return 1 + body + (129 if self.trajectory_tokens else 0)  # 1: the opening token

    def _text(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def build(self, labels: dict, target_actions: np.ndarray, speed: float) -> ReasoningTarget:
        """``target_actions`` (64, 2) normalised: the expert's plan; ``speed`` the ego speed at t0."""
        ids = self.ids
        # the opening token is forced at inference; as a target it is trivially learned
        pieces: list[tuple[list[int], int]] = [(opening_tokens(self.mode, ids), STRUCTURE)]
        if self.mode == "coc":
            pieces += [(self._text(coc_text(int(labels["decision"]), _factor_list(labels["factors"]))), COC)]
            pieces += [([ids.cot_end], STRUCTURE)]
        elif self.mode == "cfvla":
            pieces += self._cfvla(labels, target_actions, speed)
        elif self.mode == "lcdrive":
            pieces += self._proposals(target_actions)
            pieces += [([ids.vectorized_wm_end], STRUCTURE)]
        if self.mode != "none":
            pieces += [([ids.traj_future_start], STRUCTURE)]
        body = [t for tokens, _ in pieces for t in tokens]
        cats = [c for tokens, c in pieces for _ in tokens]
        body_limit = self.length - (129 if self.trajectory_tokens else 0)
        if len(body) > body_limit:  # keep the ending: the expert reads up to traj_future_start
            body, cats = body[: body_limit - 1] + body[-1:], cats[: body_limit - 1] + cats[-1:]
        if self.trajectory_tokens:
            # right after the stop token, as decoding produces them: padding in between would
            # train the first code from a pad's hidden state, which decoding never has
            body += list(encode_future(target_actions) + ids.traj_start) + [ids.traj_future_end]
            cats += [TRAJECTORY] * 129
        body += [ids.endoftext] * (self.length - len(body))
        cats += [IGNORE] * (self.length - len(cats))
        return ReasoningTarget(np.asarray(body, dtype=np.int64), np.asarray(cats, dtype=np.int8))

    def _cfvla(self, labels: dict, target_actions: np.ndarray, speed: float) -> list[tuple[list[int], int]]:
        ids = self.ids
        truth = plan_meta_actions(target_actions, speed)
        first = labels.get("cfvla_first_meta_actions")
        first = None if first is None else [tuple(int(v) for v in s) for s in first]
        wrong = None if first is None else _first_difference(first, truth)
        pieces = []
        if wrong is None:
            pieces += [(self._text(meta_action_text(truth)), META_ACTION), ([ids.meta_action_end], STRUCTURE)]
            pieces += [(self._text(ACTION_MARK), STRUCTURE)]
            return pieces
        # a critiqued sample: the first meta-actions were wrong, the critique says why
        cause = labels.get("cfvla_cause") or _main_factor(labels.get("factors"))
        pieces += [(self._text(meta_action_text(first)), META_ACTION), ([ids.meta_action_end], STRUCTURE)]
        pieces += [(self._text(THINKING_MARK), STRUCTURE)]
        pieces += [(self._text(critique_text(*wrong, str(cause))), CRITIQUE)]
        pieces += [([ids.meta_action_start], STRUCTURE), (self._text(meta_action_text(truth)), META_ACTION)]
        pieces += [([ids.meta_action_end], STRUCTURE)]
        return pieces

    def _proposals(self, target_actions: np.ndarray) -> list[tuple[list[int], int]]:
        """Block b proposes seconds [b, b+1) of the plan, one waypoint pair per 0.2 s."""
        codes = encode_future(target_actions) + self.ids.traj_start  # (128,) = 64 × (accel, curvature)
        per_step = codes.reshape(64, 2)
        stride = 10 * 2 // self.proposal_tokens  # 0.1 s steps per proposed waypoint
        pieces = []
        for b in range(self.latent_blocks):
            steps = per_step[b * 10 : (b + 1) * 10][stride - 1 :: stride][: self.proposal_tokens // 2]
            pieces += [(list(steps.reshape(-1)), PROPOSAL), ([self.ids.vectorized_wm], LATENT)]
        return pieces


def plan_meta_actions(normalised_actions: np.ndarray, speed: float) -> list[tuple[int, ...]]:
    """The time-segmented meta-actions of a plan, by the same kinematic detectors as the labels."""
    from redux.policy.action_space import clip_to_bounds, denormalise

    actions = clip_to_bounds(denormalise(normalised_actions))
    poses = integrate(actions, speed).astype(np.float64)
    speeds = speed + np.cumsum(actions[:, 0] * 0.1)
    start = np.array([[0.0, 0.0, 0.0, speed]])
    traj = np.concatenate([start, np.column_stack([poses, speeds])])
    return [tuple(int(v) for v in s) for s in segment_meta_actions(traj)]


def _first_difference(first: list[tuple], truth: list[tuple]) -> tuple[tuple, tuple] | None:
    """The (lon, lat, lane) triples of the earliest segments that disagree; None when only timing differs."""
    for a, b in zip(first, truth):
        if a[2:] != b[2:]:
            return a[2:], b[2:]
    return None


def _main_factor(factors) -> str:
    """The cause a critique names when the labels give none: the first visible factor."""
    from redux.sim_bridge.minisim.vocabulary import FACTORS

    present = _factor_list(factors) if factors is not None else []
    return FACTORS[present[0]] if present else "clear road"


def _factor_list(factors) -> list[int]:
    """Minisim labels factors as a bool vector over FACTORS."""
    return [int(i) for i in np.flatnonzero(np.asarray(factors, dtype=bool))]


def world_model_targets(labels: dict, target_actions: np.ndarray, speed: float, blocks: int, dim: int) -> np.ndarray:
    """LCDrive's cold-start latent targets (blocks, dim): what the scene holds one second later.

    From what minisim labels give exactly: the ego's pose and speed at the end of each
    second of the expert's plan, with the decision and its causal factors (what the
    latent reasoning should carry). A fixed seeded projection maps those features to the
    latent width, so every run and preset of one width shares the same target space.
    Other agents' futures are not in it yet (a known limit of the embedded targets).
    """
    from redux.policy.action_space import clip_to_bounds, denormalise
    from redux.sim_bridge.minisim.vocabulary import DECISIONS

    actions = clip_to_bounds(denormalise(target_actions))
    poses = integrate(actions, speed)
    speeds = speed + np.cumsum(actions[:, 0] * 0.1)
    decision = np.eye(len(DECISIONS), dtype=np.float32)[int(labels["decision"])]
    factors = np.asarray(labels["factors"], dtype=np.float32)
    rows = []
    for b in range(blocks):
        step = min((b + 1) * 10, len(poses)) - 1
        ego = np.array([poses[step, 0] / 20.0, poses[step, 1] / 5.0, poses[step, 2], speeds[step] / 10.0], np.float32)
        rows.append(np.concatenate([ego, decision, factors]))
    features = np.stack(rows)
    projection = np.random.default_rng(12345).standard_normal((features.shape[1], dim)).astype(np.float32)
    return (features @ (projection / np.sqrt(features.shape[1]))).astype(np.float32)
