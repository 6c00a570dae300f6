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
from redux.policy.alpamayo.presets import get_preset
from redux.policy.alpamayo.prompt import PromptBuilder
from redux.policy.text_tokenizer import build_tokenizer, load_tokenizer, token_ids


@lru_cache(maxsize=4)
def _tokenizer(path: str | None):
    return build_tokenizer() if path is None else load_tokenizer(path)


def tokenizer_for(cfg: PolicyConfig):
    preset = get_preset(cfg.preset)
    if preset.real and cfg.tokenizer is None:
        raise ValueError(
            f"preset {preset.name} extends Qwen's vocabulary: set policy.tokenizer to the published "
            "tokenizer directory (e.g. the nvidia/Alpamayo-R1-10B snapshot)"
        )
    return _tokenizer(cfg.tokenizer)


def vocabulary_ids(tokenizer) -> VocabularyIds:
    ids = token_ids(tokenizer)
    return VocabularyIds(ids.vocab_size, ids.image_pad, ids.vision_start, ids.vision_end, ids.endoftext, None)


def build_alpamayo(cfg: PolicyConfig) -> AlpamayoR1:
    """The network with its prompt builder attached (``model.prompts``), random weights
    unless ``policy.checkpoint`` names published weights."""
    preset = get_preset(cfg.preset)
    tokenizer = tokenizer_for(cfg)
    if cfg.checkpoint is None:
        model = AlpamayoR1(preset, vocabulary_ids(tokenizer))
    else:
        from redux.policy.alpamayo.checkpoint import load_published_checkpoint

        # on meta first: the 10 B model is never materialised twice (random, then loaded)
        with torch.device("meta"):
            model = AlpamayoR1(preset, vocabulary_ids(tokenizer))
        load_published_checkpoint(model, cfg.checkpoint)
    model.tokenizer = tokenizer
    model.prompts = PromptBuilder(preset, tokenizer, token_ids(tokenizer))
    return model
