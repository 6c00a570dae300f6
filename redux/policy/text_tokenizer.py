"""A real tokenizer for the embedded presets, built offline from the reasoning corpus.

Layout of the ids, in order: a byte-level BPE trained on ``reasoning_text.corpus()``
(so any text encodes, and the reasoning in few tokens), the trajectory tokens
``<i0>``..``<i{n-1}>`` (contiguous, so a trajectory code k is ``traj_start + k``),
the special and chat tokens, then ``Action:`` and ``Thinking:`` as single tokens.

The BPE trainer has no seed, and needs none: with the whole byte alphabet given up
front every symbol id is fixed before counting, and ties between equally frequent
pairs are broken by those ids, so the same corpus gives the same merges every run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from redux.policy.reasoning_text import (
    ACTION_MARK,
    CHAT_TOKENS,
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    INSTRUCTION,
    SYSTEM_PROMPT,
    THINKING_MARK,
    corpus,
)

_TRAJ_TOKEN = re.compile(r"<i(\d+)>")
PROMPT_TEXT_WEIGHT = 2000


def traj_token(k: int) -> str:
    return f"<i{k}>"


def build_tokenizer(bpe_vocab_size: int = 768, traj_vocab_size: int = 4000) -> PreTrainedTokenizerFast:
    """Train the BPE on the reasoning corpus and add the trajectory, special and mark tokens."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if bpe_vocab_size < len(alphabet):
        raise ValueError(f"bpe_vocab_size must cover the {len(alphabet)} byte symbols, got {bpe_vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size, min_frequency=2, initial_alphabet=alphabet, show_progress=False
    )
    # the prompt's fixed text is in every sequence the model reads: weighting it by that use
    # makes BPE spend merges on it (≈100 → ≈30 tokens), which shortens every forward pass
    backend.train_from_iterator(corpus() + [SYSTEM_PROMPT, INSTRUCTION] * PROMPT_TEXT_WEIGHT, trainer=trainer)

    # added one call per group, so each group gets contiguous ids in this order
    backend.add_tokens([AddedToken(traj_token(k), normalized=False) for k in range(traj_vocab_size)])
    specials = [*SPECIAL_TOKENS.values(), *CHAT_TOKENS.values()]
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    backend.add_tokens([AddedToken(t, normalized=False) for t in (ACTION_MARK, THINKING_MARK)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        extra_special_tokens=specials,
        clean_up_tokenization_spaces=False,  # the reasoning decodes to exactly what was encoded
    )


def load_tokenizer(path: str) -> PreTrainedTokenizerFast:
    """A tokenizer saved with ``save_pretrained(path)``; reads only the local directory."""
    return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)


def traj_token_start(tokenizer: PreTrainedTokenizerFast) -> int:
    return tokenizer.convert_tokens_to_ids(traj_token(0))


def traj_vocab_size(tokenizer: PreTrainedTokenizerFast) -> int:
    """How many trajectory tokens the tokenizer holds; ValueError unless their ids are contiguous."""
    ids = {int(m[1]): i for t, i in tokenizer.get_vocab().items() if (m := _TRAJ_TOKEN.fullmatch(t))}
    start = ids.get(0)
    if start is None or any(ids.get(k) != start + k for k in range(len(ids))):
        raise ValueError("the tokenizer's trajectory tokens <i0>..<iN> are missing or not contiguous")
    return len(ids)


@dataclass(frozen=True)
class TokenIds:
    """The ids the policy needs, named as in ``SPECIAL_TOKENS`` and ``CHAT_TOKENS``."""

    prompt_start: int
    prompt_end: int
    image_start: int
    image_pre_tkn: int
    image_end: int
    traj_history_start: int
    traj_history_pre_tkn: int
    traj_history_end: int
    cot_start: int
    cot_end: int
    meta_action_start: int
    meta_action_end: int
    traj_future_start: int
    traj_future_pre_tkn: int
    traj_future_end: int
    traj_history: int
    traj_future: int
    image_pad: int
    vectorized_wm: int
    vectorized_wm_start: int
    vectorized_wm_end: int
    vectorized_wm_pre_tkn: int
    route_start: int
    route_pad: int
    route_end: int
    question_start: int
    question_end: int
    answer_start: int
    answer_end: int
    im_start: int
    im_end: int
    endoftext: int
    vision_start: int
    vision_end: int
    action_mark: int
    thinking_mark: int
    traj_start: int
    traj_vocab_size: int
    vocab_size: int

    @property
    def pad(self) -> int:
        return self.endoftext

    @property
    def eos(self) -> int:
        return self.im_end

    def traj_id(self, code: int) -> int:
        return self.traj_start + code


def _single_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{token!r} is not a single token of this tokenizer (it encodes to {ids})")
    return ids[0]


def token_ids(tokenizer: PreTrainedTokenizerFast) -> TokenIds:
    """Every id by name; ValueError if the tokenizer lacks one of the tokens."""
    named = {name: _single_id(tokenizer, token) for name, token in {**SPECIAL_TOKENS, **CHAT_TOKENS}.items()}
    return TokenIds(
        **named,
        action_mark=_single_id(tokenizer, ACTION_MARK),
        thinking_mark=_single_id(tokenizer, THINKING_MARK),
        traj_start=traj_token_start(tokenizer),
        traj_vocab_size=traj_vocab_size(tokenizer),
        vocab_size=len(tokenizer),
    )
