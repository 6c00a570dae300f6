"""What a preset amounts to: parameter counts per component and its main dimensions.

Everything is computed on a model built on the meta device, so even the 10 B preset
is counted in a fraction of a second without allocating its weights.
"""

from __future__ import annotations

import torch

from redux.config import PolicyConfig
from redux.policy.alpamayo.factory import tokenizer_for, vocabulary_ids
from redux.policy.alpamayo.model import AlpamayoR1, VocabularyIds
from redux.policy.alpamayo.presets import ModelPreset, get_preset

# parameter-name prefixes of each reported component; backbone = vision + language model
COMPONENTS: dict[str, tuple[str, ...]] = {
    "vision": ("vlm.model.visual.",),
    "language_model": ("vlm.model.language_model.", "vlm.lm_head."),
    "expert": ("expert.", "action_in_proj.", "action_out_proj."),
    "reasoning_heads": ("latent_head.", "latent_in_proj.", "reasoning_probe."),
}


def meta_model(preset: ModelPreset | str) -> AlpamayoR1:
    """The preset's network with shapes but no storage.

    Real presets carry their vocabulary size; embedded ones take it from the offline
    tokenizer, which is built (and cached) in well under a second.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if preset.real:
        ids = VocabularyIds(vocab_size=preset.vocab_size)
    else:
        ids = vocabulary_ids(tokenizer_for(PolicyConfig(kind="alpamayo", preset=preset.name)))
    with torch.device("meta"):
        return AlpamayoR1(preset, ids)


def dimensions(model: AlpamayoR1) -> dict:
    p, v = model.preset, model.preset.vision
    return {
        "vocab_size": model.ids.vocab_size,
        "hidden": p.hidden,
        "layers": p.layers,
        "heads": p.heads,
        "kv_heads": p.kv_heads,
        "head_dim": p.head_dim,
        "intermediate": p.intermediate,
        "tied_embeddings": p.tie_embeddings,
        "vision_depth": v.depth,
        "vision_hidden": v.hidden,
        "vision_heads": v.heads,
        "vision_patch": v.patch,
        "expert_layers": p.layers,
        "expert_hidden": p.expert_hidden,
        "expert_heads": p.expert_heads,
        "expert_intermediate": p.expert_intermediate,
        "latent_dim": p.latent_dim,
        "cameras": len(p.cameras),
        "frames": p.frames,
        "image": f"{p.image_height}x{p.image_width}",
    }


def parameter_counts(preset_name: str) -> dict:
    """Counts per component (tied embeddings counted once) and the preset's dimensions."""
    model = meta_model(preset_name)
    counts = dict.fromkeys(COMPONENTS, 0)
    total = 0
    for name, param in model.named_parameters():  # named_parameters drops the tied lm_head's duplicate
        total += param.numel()
        for component, prefixes in COMPONENTS.items():
            if name.startswith(prefixes):
                counts[component] += param.numel()
    return {
        "preset": preset_name,
        "total": total,
        "backbone": counts["vision"] + counts["language_model"],
        **counts,
        "dimensions": dimensions(model),
    }
