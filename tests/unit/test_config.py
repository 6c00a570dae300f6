from pathlib import Path

import pytest
import yaml

from redux.config import ConfigError, RunConfig, config_to_yaml, load_config


def test_defaults_validate_and_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(config_to_yaml(RunConfig()))
    assert load_config(path) == RunConfig()


def test_quickstart_config_loads():
    cfg = load_config("configs/quickstart.yaml")
    assert cfg.name == "quickstart" and cfg.actors.num == 2


SHIPPED_CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_configs_are_found():
    assert len(SHIPPED_CONFIGS) >= 5


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    """A renamed or moved key must not leave a recipe in configs/ that no longer loads."""
    assert isinstance(load_config(path), RunConfig)


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"learner": {"stpes": 3}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "learner.stpes" in str(err.value) and str(path) in str(err.value)


def test_bad_value_names_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"actors": {"num": 0}}))
    with pytest.raises(ConfigError, match="actors.num"):
        load_config(path)


def test_overrides_are_typed_and_validated():
    cfg = load_config(None, ["learner.steps=7", "buffer.redis_url=redis://h:1/0", "sim.speed_limit_mps=[5, 6]"])
    assert cfg.learner.steps == 7
    assert cfg.buffer.redis_url == "redis://h:1/0"
    assert cfg.sim.speed_limit_mps == (5.0, 6.0)
    with pytest.raises(ConfigError, match="learner.nope"):
        load_config(None, ["learner.nope=1"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(None, ["learner.steps"])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_checkpoints_must_fall_on_publishes():
    with pytest.raises(ConfigError, match="multiple of publish_every"):
        load_config(None, ["learner.publish_every=3", "learner.checkpoint_every=10"])
    assert load_config(None, ["learner.publish_every=3", "learner.checkpoint_every=9"]).learner.checkpoint_every == 9


def test_reference_config_is_current():
    """configs/reference.yaml shows every effective key; regenerate with `make reference-config`."""
    with open("configs/reference.yaml") as f:
        body = "".join(line for line in f if not line.startswith("#"))
    assert body == config_to_yaml(RunConfig())


def test_a_job_that_cannot_fit_the_local_cluster_says_what_to_lower():
    from redux.actors.job import check_cpus_fit, requested_cpus

    cfg = load_config(None, ["policy.kind=alpamayo", "policy.engine=vllm", "policy.vllm.replicas=2"])
    assert requested_cpus(cfg) == cfg.learner.num_cpus + 2 * cfg.actors.num_cpus + 2 * cfg.policy.vllm.replica_cpus
    check_cpus_fit(cfg, requested_cpus(cfg))
    with pytest.raises(ConfigError, match="policy.vllm.replicas × replica_cpus 2 × 0.5.*local cluster has 2"):
        check_cpus_fit(cfg, 2)
    torch_cfg = load_config(None, [])
    with pytest.raises(ConfigError, match=r"actors.num_cpus 2 × 0.5\) but the local cluster has 1"):
        check_cpus_fit(torch_cfg, 1)


def test_gpu_weight_transfer_goes_to_shared_replicas():
    base = ["policy.kind=alpamayo", "policy.engine=vllm", "policy.vllm.weight_transfer=nccl"]
    with pytest.raises(ConfigError, match="weight_transfer=nccl sends weights to shared replicas"):
        load_config(None, base)
    assert load_config(None, [*base, "policy.vllm.replicas=2"]).policy.vllm.weight_transfer == "nccl"


def test_an_older_runs_config_loads_with_moved_keys(tmp_path):
    old = tmp_path / "config.yaml"
    old.write_text("policy:\n  kind: alpamayo\n  vllm:\n    plan: trajectory_tokens\n    max_batch: 8\n")
    cfg = load_config(old)
    assert cfg.policy.plan == "trajectory_tokens" and cfg.policy.vllm.max_batch == 8
    assert load_config(old, ["policy.plan=flow"]).policy.plan == "flow"  # where both are given, the new key wins
