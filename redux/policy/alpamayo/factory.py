"""Config → model and tokenizer: the one place an Alpamayo network is built.

Embedded presets use the offline BPE tokenizer (built in a fraction of a second and
cached per process, so every replica and the learner agree on its ids); real presets
need the published tokenizer directory, since Qwen's vocabulary cannot be rebuilt here.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from redux.config import PolicyConfig
from redux.policy.alpamayo.model import AlpamayoR1, VocabularyIds
from redux.policy.alpamayo.presets import ModelPreset, get_preset
from redux.policy.alpamayo.prompt import PromptBuilder
from redux.policy.text_tokenizer import build_tokenizer, load_tokenizer, token_ids


EMBEDDED_TOKENIZER = "embedded"


@lru_cache(maxsize=4)
def _tokenizer(path: str | None):
    return build_tokenizer() if path in (None, EMBEDDED_TOKENIZER) else load_tokenizer(path)


def tokenizer_for(cfg: PolicyConfig):
    preset = get_preset(cfg.preset)
    if preset.real and cfg.tokenizer is None:
        raise ValueError(
            f"preset {preset.name} extends Qwen's vocabulary: set policy.tokenizer to the published "
            f"tokenizer directory (e.g. the nvidia/Alpamayo-R1-10B snapshot), or to {EMBEDDED_TOKENIZER!r} "
            "for random weights"
        )
    if cfg.tokenizer == EMBEDDED_TOKENIZER and cfg.checkpoint is not None:
        raise ValueError(
            f"policy.tokenizer={EMBEDDED_TOKENIZER!r} numbers tokens unlike the published vocabulary, "
            "so the published weights would read other tokens: give the checkpoint's own tokenizer"
        )
    return _tokenizer(cfg.tokenizer)


def vocabulary_ids(tokenizer, preset: ModelPreset | None = None) -> VocabularyIds:
    """The network's ids; a real preset keeps its published embedding rows (Qwen's table is
    larger than its tokenizer too), so the embedded tokenizer leaves the shapes unchanged."""
    ids = token_ids(tokenizer)
    rows = ids.vocab_size if preset is None or not preset.real else max(ids.vocab_size, preset.vocab_size)
    return VocabularyIds(rows, ids.image_pad, ids.vision_start, ids.vision_end, ids.endoftext, None)


def build_alpamayo(cfg: PolicyConfig, device: str | torch.device = "cpu") -> AlpamayoR1:
    """The network with its prompt builder attached (``model.prompts``), random weights
    unless ``policy.checkpoint`` names published weights, its parameters made on ``device``
    (a 10 B model is never first made on the host)."""
    preset = get_preset(cfg.preset)
    tokenizer = tokenizer_for(cfg)
    if cfg.checkpoint is None:
        with torch.device(device):
            model = AlpamayoR1(preset, vocabulary_ids(tokenizer, preset), cfg.plan_units, cfg.flow_prediction)
    else:
        from redux.policy.alpamayo.checkpoint import load_published_checkpoint

        # on meta first: the 10 B model is never materialised twice (random, then loaded)
        with torch.device("meta"):
            model = AlpamayoR1(preset, vocabulary_ids(tokenizer, preset), cfg.plan_units, cfg.flow_prediction)
        load_published_checkpoint(model, cfg.checkpoint)
        model.to(device)
    model.tokenizer = tokenizer
    model.prompts = PromptBuilder(preset, tokenizer, token_ids(tokenizer))
    return model
