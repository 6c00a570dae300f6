"""The language model vLLM serves: its export is a Qwen3ForCausalLM that computes what our backbone does."""

import json

import pytest
import torch
from transformers import Qwen3ForCausalLM

from redux.config import PolicyConfig
from redux.policy.alpamayo.factory import build_alpamayo
from redux.policy.alpamayo.model import AlpamayoR1, VocabularyIds
from redux.policy.alpamayo.presets import get_preset
from redux.policy.vllm.served_model import check_servable, served_name, served_weights, write_served_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny", reasoning="coc")).eval()


def test_export_loads_as_qwen3_and_matches_the_backbone_on_prompt_embeddings(model, tmp_path):
    path = write_served_model(model, tmp_path / "served", max_model_len=512)
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["max_position_embeddings"] == 512
    served = Qwen3ForCausalLM.from_pretrained(path).eval()
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1))
    embeds = model.embed(ids) + 0.1 * torch.randn(2, 24, model.preset.hidden)  # stand-ins for vision features
    positions = torch.arange(24)[None, None].expand(3, 2, -1)
    with torch.no_grad():
        hidden, _ = model.backbone(embeds, positions, torch.ones_like(ids))
        ours = model.logits(hidden)
        theirs = served(inputs_embeds=embeds).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)


def test_only_the_language_model_is_served_under_qwen3_names(model):
    names = dict(served_weights(model.state_dict().items()))
    assert all(n.startswith("model.") or n == "lm_head.weight" for n in names)
    assert "model.layers.0.self_attn.q_proj.weight" in names and "model.embed_tokens.weight" in names
    assert served_name("expert.layers.0.mlp.up_proj.weight") is None
    assert served_name("vlm.model.visual.patch_embed.proj.weight") is None
    lm = [k for k in model.state_dict() if k.startswith("vlm.model.language_model.")]
    assert len(names) == len(lm) + 1  # + the head (tied in tiny, still pushed so vLLM's copy follows)


def test_presets_with_mrope_images_are_not_servable_from_embeddings():
    preset = get_preset("tiny-0.5b")
    with torch.device("meta"):
        real = AlpamayoR1(preset, VocabularyIds(vocab_size=preset.vocab_size))
    with pytest.raises(ValueError, match="M-RoPE"):
        check_servable(real)
