"""Published-layout checkpoints: a tiny one written locally with the real key names loads
completely into a fresh model, and a checkpoint that does not fit loads nothing."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from redux.config import PolicyConfig
from redux.policy.alpamayo.checkpoint import (
    INDEX,
    OUR_MODULES,
    expected_published_shapes,
    load_published_checkpoint,
    map_published_keys,
    our_key,
    save_published_checkpoint,
)
from redux.policy.alpamayo.factory import build_alpamayo, tokenizer_for, vocabulary_ids
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.policy import AlpamayoPolicy
from redux.sim_bridge.session import Observation

CFG = PolicyConfig(kind="alpamayo", preset="tiny", reasoning="coc")


def seeded_model(seed: int) -> AlpamayoR1:
    torch.manual_seed(seed)
    return build_alpamayo(CFG)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k].to(sa[k].dtype)), k


def observations(n=1):
    rng = np.random.default_rng(0)
    t = np.arange(-15, 1) * 0.1
    history = np.stack([5.0 * t, np.zeros_like(t), np.zeros_like(t)], axis=-1).astype(np.float32)
    return [
        Observation(
            cameras={"bev": rng.integers(0, 255, (2, 6, 48, 48), dtype=np.uint8)},
            ego_history=history,
            route=np.zeros((20, 3), np.float32),
            time_us=0,
        )
        for _ in range(n)
    ]


def act(model):
    policy = AlpamayoPolicy(model, model.tokenizer, CFG)
    return policy.act(observations(), greedy=True)


def read_all(directory) -> dict[str, torch.Tensor]:
    weight_map = json.loads((directory / INDEX).read_text())["weight_map"]
    tensors = {}
    for file in sorted(set(weight_map.values())):
        with safe_open(directory / file, framework="pt") as shard:
            tensors.update({k: shard.get_tensor(k) for k in shard.keys()})
    return tensors


@pytest.fixture(scope="module")
def source():
    return seeded_model(0)


@pytest.fixture(scope="module")
def source_plan(source):
    return act(source)


@pytest.fixture(scope="module")
def published(source, tmp_path_factory):
    directory = tmp_path_factory.mktemp("published")
    save_published_checkpoint(source, directory, shard_bytes=200_000)
    return directory


def test_index_names_the_published_keys_across_shards(published):
    weight_map = json.loads((published / INDEX).read_text())["weight_map"]
    assert len(set(weight_map.values())) >= 2
    for key in (
        "vlm.model.language_model.layers.0.self_attn.q_proj.weight",
        "vlm.model.language_model.embed_tokens.weight",
        "vlm.model.visual.patch_embed.proj.weight",
        "expert.layers.0.mlp.gate_proj.weight",
        "action_in_proj.encoder.trunk.3.weight",
        "action_in_proj.sinus.0.freqs",
        "action_space.accel_mean",
    ):
        assert key in weight_map
    assert "vlm.lm_head.weight" not in weight_map  # tiny ties it to the embedding


def test_every_tensor_loads_and_the_policy_acts_identically(source, source_plan, published):
    target = seeded_model(1)
    assert not torch.equal(target.expert.layers[0].mlp.up_proj.weight, source.expert.layers[0].mlp.up_proj.weight)
    report = load_published_checkpoint(target, published)
    assert report.shards >= 2 and report.initialised == [] and report.renamed == {}
    assert set(report.loaded) | {"vlm.lm_head.weight"} == set(target.state_dict())
    assert_same_weights(source, target)
    got = act(target)
    np.testing.assert_array_equal(source_plan.actions, got.actions)
    np.testing.assert_array_equal(source_plan.extras["reasoning_ids"], got.extras["reasoning_ids"])


def test_a_meta_model_comes_out_whole_without_the_lcdrive_modules(source, source_plan, tmp_path):
    save_published_checkpoint(source, tmp_path, lcdrive=False)
    with torch.device("meta"):
        model = AlpamayoR1(source.preset, vocabulary_ids(tokenizer_for(CFG)))
    model.tokenizer = source.tokenizer
    report = load_published_checkpoint(model, tmp_path)
    assert report.initialised and all(k.startswith(OUR_MODULES) for k in report.initialised)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert model.vlm.lm_head.weight is model.vlm.get_input_embeddings().weight
    ours = source.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith(OUR_MODULES):
            assert torch.equal(v, ours[k]), k
    # it reasons as the source did; the plan is compared within one model below, because a
    # meta-loaded weight's memory layout can move the decode by ~1e-7, which ten Euler steps
    # through 100-cycle Fourier features amplify
    before = act(model)
    np.testing.assert_array_equal(source_plan.extras["reasoning_ids"], before.extras["reasoning_ids"])
    # coc reasoning never reads the LCDrive modules (random here)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(OUR_MODULES):
                parameter.add_(torch.randn_like(parameter))
    np.testing.assert_array_equal(before.actions, act(model).actions)


def test_dtype_casts_a_meta_load(published, source):
    with torch.device("meta"):
        model = AlpamayoR1(source.preset, vocabulary_ids(tokenizer_for(CFG)))
    load_published_checkpoint(model, published, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def rewrite(published, tmp_path, edit):
    tensors = read_all(published)
    edit(tensors)
    save_file(tensors, tmp_path / "model.safetensors")
    return tmp_path


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda t: t.pop("expert.layers.1.self_attn.k_proj.weight"), "expert.layers.1.self_attn.k_proj.weight"),
        (
            lambda t: t.update({"expert.layers.7.mlp.up_proj.weight": torch.zeros(3)}),
            "expert.layers.7.mlp.up_proj.weight",
        ),
        (
            lambda t: t.update({"action_out_proj.weight": torch.zeros(2, 17)}),
            "action_out_proj.weight: checkpoint (2, 17), model (2, 16)",
        ),
        (lambda t: t.update({"action_space.accel_std": torch.tensor(0.7)}), "action_space.accel_std"),
    ],
    ids=["missing", "unexpected", "shape", "statistics"],
)
def test_a_checkpoint_that_does_not_fit_loads_nothing(published, tmp_path, edit, named):
    target = seeded_model(2)
    before = snapshot(target)
    with pytest.raises(ValueError, match="nothing was loaded") as err:
        load_published_checkpoint(target, rewrite(published, tmp_path, edit))
    assert named in str(err.value)
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bf16_rounding_of_the_statistics_is_agreement(published, tmp_path):
    def to_bf16(tensors):
        for k in [k for k in tensors if k.startswith("action_space.")]:
            tensors[k] = tensors[k].to(torch.bfloat16)

    load_published_checkpoint(seeded_model(3), rewrite(published, tmp_path, to_bf16))


def legacy(name: str) -> str:
    for current, old in (
        ("vlm.model.language_model.", "vlm.model."),
        ("vlm.model.visual.", "vlm.visual."),
    ):
        if name.startswith(current):
            return old + name[len(current) :]
    return name


def test_legacy_alias_names_load(source, published, tmp_path):
    def rename(tensors):
        renamed = {legacy(k): v for k, v in tensors.items()}
        tensors.clear()
        tensors.update(renamed)

    target = seeded_model(4)
    report = load_published_checkpoint(target, rewrite(published, tmp_path, rename))
    assert report.renamed["vlm.model.layers.0.self_attn.q_proj.weight"] == (
        "vlm.model.language_model.layers.0.self_attn.q_proj.weight"
    )
    assert report.renamed["vlm.visual.patch_embed.proj.weight"] == "vlm.model.visual.patch_embed.proj.weight"
    assert_same_weights(source, target)


def test_mapping_is_identity_for_the_current_layout_and_rejects_collisions():
    current = "vlm.model.language_model.norm.weight"
    assert our_key(current) == current
    assert our_key("vlm.model.norm.weight") == current
    assert our_key("vlm.model.embed_tokens.weight") == "vlm.model.language_model.embed_tokens.weight"
    with pytest.raises(ValueError, match="same tensor"):
        map_published_keys([current, "vlm.model.norm.weight"])


def test_expected_shapes_of_the_published_10b():
    shapes = expected_published_shapes("alpamayo-r1-10b")
    assert shapes["vlm.model.visual.patch_embed.proj.weight"] == (1152, 3, 2, 16, 16)
    assert shapes["expert.layers.0.self_attn.q_proj.weight"] == (2048, 2048)
    assert shapes["expert.layers.35.self_attn.k_proj.weight"] == (1024, 2048)
    assert shapes["expert.layers.0.mlp.gate_proj.weight"] == (8256, 2048)
    assert shapes["action_out_proj.weight"] == (2, 2048)
    assert shapes["action_in_proj.encoder.trunk.0.weight"] == (512, 60)
    assert shapes["action_in_proj.encoder.trunk.2.weight"] == (512,)
    assert shapes["action_space.accel_mean"] == ()
    assert "vlm.lm_head.weight" in shapes and "vlm.model.visual.pos_embed.weight" in shapes
    assert "vlm.model.visual.deepstack_merger_list.2.linear_fc2.weight" in shapes
    assert not any(k.startswith(OUR_MODULES) for k in shapes)
    assert sum(not k.startswith("vlm.") for k in shapes) == 416
    assert "expert.embed_tokens.weight" not in shapes and "expert.layers.36.input_layernorm.weight" not in shapes


def test_policy_config_checkpoint_builds_on_meta_and_loads_the_file(source, published):
    cfg = CFG.model_copy(update={"checkpoint": str(published)})
    loaded = build_alpamayo(cfg)
    assert_same_weights(source, loaded)
    assert not any(p.is_meta for p in loaded.parameters())
