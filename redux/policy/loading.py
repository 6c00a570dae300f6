"""Policies by name: a reference policy, or a checkpoint of a run.

A checkpoint is either a run directory (its newest checkpoint is used) or one
checkpoint directory inside it; the run's ``config.yaml`` says which model to build.
"""

from __future__ import annotations

from pathlib import Path

from redux.buffer.codec import decode_tensors
from redux.config import RunConfig, load_config
from redux.policy.reference import REFERENCE_POLICIES

POLICY_WEIGHTS = "policy.weights"  # encode_tensors of the model's state_dict, beside DeepSpeed's files
POLICY_TOKENIZER = "tokenizer"  # save_pretrained directory of an alpamayo policy's tokenizer


# policy settings an evaluation's config (--set) may change on a trained checkpoint
DECODING_KEYS = frozenset({"plan", "flow_steps", "sde_noise", "temperature", "top_p"})


def decoding_overrides(cfg: RunConfig) -> dict:
    """The decoding settings ``cfg`` sets explicitly (a YAML or --set), which a checkpoint takes."""
    return {key: getattr(cfg.policy, key) for key in sorted(DECODING_KEYS & cfg.policy.model_fields_set)}


def make_policy(spec: str, cfg: RunConfig):
    """``spec``: a reference policy name (expert, constant-velocity, lane-keeper) or a checkpoint path."""
    if spec in REFERENCE_POLICIES:
        return REFERENCE_POLICIES[spec]()
    return load_checkpoint_policy(Path(spec), cfg)


def find_weights(path: Path) -> Path:
    if (path / POLICY_WEIGHTS).is_file():
        return path / POLICY_WEIGHTS
    candidates = sorted((path / "checkpoints").glob(f"step*/{POLICY_WEIGHTS}"))
    if not candidates:
        raise FileNotFoundError(
            f"{path} is neither a reference policy ({', '.join(REFERENCE_POLICIES)}) nor a checkpoint "
            f"(no {POLICY_WEIGHTS} in it or under its checkpoints/)"
        )
    return candidates[-1]


def checkpoint_weights(weights: Path) -> dict:
    """The named tensors of a ``policy.weights`` file, older checkpoints brought to the current layout."""
    from redux.policy.alpamayo.plan_units import with_units_of_older_checkpoints

    return with_units_of_older_checkpoints(decode_tensors(weights.read_bytes()))


def load_initial_weights(model, spec: str) -> None:
    """Start ``model`` from a run's checkpoint (a staged recipe's earlier stage). Every tensor
    must match: a checkpoint of another preset or vocabulary is refused with the mismatch."""
    named = checkpoint_weights(find_weights(Path(spec)))
    try:
        model.load_state_dict(named, strict=True)
    except RuntimeError as error:
        raise ValueError(f"policy.init_from={spec} does not fit the configured network: {error}") from None


def run_config_of(path: Path) -> Path:
    """The config.yaml of the run a checkpoint (or run directory) belongs to."""
    weights = find_weights(path)
    run_dir = weights.parent.parent.parent if weights.parent.parent.name == "checkpoints" else path
    return run_dir / "config.yaml"


def load_checkpoint_policy(path: Path, cfg: RunConfig):
    from redux.policy.torch_engine import make_policy_replica

    weights = find_weights(path)
    trained = load_config(run_config_of(path))
    if (weights.parent / POLICY_TOKENIZER).is_dir():
        trained.policy.tokenizer = str(weights.parent / POLICY_TOKENIZER)
    # the model is the checkpoint's; the evaluation's simulator must feed it the same inputs.
    # Its weights are all here, so the run's starting point need not exist any more.
    trained.policy.init_from = None
    # the network is the checkpoint's, but how it decodes is the evaluation's to choose
    for key, value in decoding_overrides(cfg).items():
        setattr(trained.policy, key, value)
    if trained.policy.plan == "trajectory_tokens" and not trained.policy.trajectory_tokens:
        raise ValueError(f"{path} was not trained on trajectory tokens (policy.trajectory_tokens): it cannot plan with them")
    policy = make_policy_replica(trained.policy, trained.sim, seed=cfg.seed)
    policy.load_weights(checkpoint_weights(weights), version=0)
    return policy


def with_policy_inputs(cfg: RunConfig, spec: str) -> RunConfig:
    """A copy of ``cfg`` whose simulator renders what the policy ``spec`` was trained to see."""
    cfg = cfg.model_copy(deep=True)
    if spec in REFERENCE_POLICIES:
        return cfg
    trained = load_config(run_config_of(Path(spec)))
    if trained.sim.kind != "minisim":
        raise ValueError(f"{spec} was trained on the {trained.sim.kind!r} simulator; only minisim policies can be scored here")
    for key in ("cameras", "camera_width", "camera_height", "bev_pixels", "bev_metres_per_pixel", "bev_supersample"):
        setattr(cfg.sim, key, getattr(trained.sim, key))
    return cfg
