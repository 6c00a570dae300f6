"""What each sample's reasoning states, in the closed sets the consistency check speaks.

CoC text names a decision (parsed back from the sentence); CF-VLA text states
meta-actions (its last, possibly revised, list counts); an LCDrive latent trace says
nothing in words, so the reasoning probe decodes it to a decision and causal factors,
from which a one-sentence explanation is written. Unparseable reasoning gives −1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.reasoning import Reasoning
from redux.policy.reasoning_text import coc_text, parse_decision, parse_meta_action_text
from redux.policy.text_tokenizer import TokenIds


@dataclass
class Stated:
    decision: np.ndarray  # (N,) decision index or −1
    meta_actions: np.ndarray  # (N, 3) first stated (lon, lat, lane) or −1
    texts: list[str]  # the reasoning as text (the probe's sentence for LCDrive)


def stated_reasoning(model: AlpamayoR1, tokenizer, ids: TokenIds, mode: str, reasoning: Reasoning) -> Stated:
    n = reasoning.tokens.shape[0]
    decision = np.full(n, -1, dtype=np.int64)
    meta = np.full((n, 3), -1, dtype=np.int64)
    texts = [""] * n
    if mode == "lcdrive":
        probe_weight = model.reasoning_probe.trunk[0].weight
        with torch.inference_mode():
            probe = model.reasoning_probe(reasoning.latents.to(probe_weight.device, probe_weight.dtype))
        decision = probe["decision"].argmax(-1).cpu().numpy()
        factors = (probe["factors"] > 0).cpu().numpy()
        meta = np.stack([head.argmax(-1).cpu().numpy() for head in probe["meta_actions"]], axis=1)
        texts = [coc_text(int(d), [int(f) for f in np.flatnonzero(fs)]) for d, fs in zip(decision, factors)]
        return Stated(decision, meta, texts)
    all_tokens, lengths = reasoning.tokens.cpu(), reasoning.lengths.cpu()
    for row in range(n):
        tokens = all_tokens[row, : int(lengths[row])].tolist()
        texts[row] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        if mode == "coc":
            decision[row] = _or_minus_one(parse_decision(texts[row]))
        elif mode == "cfvla":
            meta[row] = _last_meta_actions(tokenizer, ids, tokens)
    return Stated(decision, meta, texts)


def _last_meta_actions(tokenizer, ids: TokenIds, tokens: list[int]) -> np.ndarray:
    """The first segment of the last complete meta-action list (the opening start token is the prompt's)."""
    ends = [i for i, t in enumerate(tokens) if t == ids.meta_action_end]
    if not ends:
        return np.full(3, -1)
    starts = [i for i, t in enumerate(tokens[: ends[-1]]) if t == ids.meta_action_start]
    begin = starts[-1] + 1 if starts else 0
    try:
        segments = parse_meta_action_text(tokenizer.decode(tokens[begin : ends[-1]], skip_special_tokens=True))
    except ValueError:
        return np.full(3, -1)
    return np.asarray(segments[0][2:], dtype=np.int64)


def _or_minus_one(value: int | None) -> int:
    return -1 if value is None else value
