"""The offline tokenizer: BPE over the reasoning corpus plus trajectory, special and mark tokens."""

import dataclasses

import pytest

from redux.policy.reasoning_text import (
    ACTION_MARK,
    CHAT_TOKENS,
    SPECIAL_TOKENS,
    THINKING_MARK,
    coc_text,
    corpus,
    critique_text,
    meta_action_text,
)
from redux.policy.text_tokenizer import (
    build_tokenizer,
    load_tokenizer,
    token_ids,
    traj_token_start,
    traj_vocab_size,
)

BPE_CAP, TRAJ = 768, 4000  # the BPE learns at most BPE_CAP symbols (fewer if merges run out)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def ids(tokenizer):
    return token_ids(tokenizer)


def test_id_layout(tokenizer, ids):
    BPE = ids.traj_start
    assert 256 < BPE <= BPE_CAP
    specials = [*SPECIAL_TOKENS.values(), *CHAT_TOKENS.values()]
    assert len(tokenizer) == ids.vocab_size == BPE + TRAJ + len(specials) + 2
    assert ids.traj_start == traj_token_start(tokenizer) == BPE
    assert ids.traj_vocab_size == traj_vocab_size(tokenizer) == TRAJ
    assert tokenizer.convert_tokens_to_ids(specials) == list(range(BPE + TRAJ, BPE + TRAJ + len(specials)))
    assert (ids.action_mark, ids.thinking_mark) == (ids.vocab_size - 2, ids.vocab_size - 1)
    assert (ids.pad, ids.eos) == (tokenizer.pad_token_id, tokenizer.eos_token_id)
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.eos_token == "<|im_end|>"


def test_token_ids_names_every_special_token(ids):
    fields = {f.name for f in dataclasses.fields(ids)}
    assert fields == {
        *SPECIAL_TOKENS,
        *CHAT_TOKENS,
        "action_mark",
        "thinking_mark",
        "traj_start",
        "traj_vocab_size",
        "vocab_size",
    }
    assert ids.cot_start != ids.cot_end


def test_every_trajectory_token_is_one_contiguous_id(tokenizer, ids):
    text = "".join(f"<i{k}>" for k in range(TRAJ))
    assert tokenizer.encode(text, add_special_tokens=False) == [ids.traj_id(k) for k in range(TRAJ)]


def test_specials_and_marks_are_single_tokens_inside_text(tokenizer, ids):
    text = f"<|cot_start|>{coc_text(2, [4])}<|cot_end|>0.0-6.4s wait, straight, keep lane {ACTION_MARK} <i7>"
    encoded = tokenizer.encode(text, add_special_tokens=False)
    for token_id in (ids.cot_start, ids.cot_end, ids.action_mark, ids.traj_id(7)):
        assert encoded.count(token_id) == 1
    assert tokenizer.decode(encoded) == text
    assert tokenizer.decode(encoded, skip_special_tokens=True) == text.replace("<|cot_start|>", "").replace(
        "<|cot_end|>", ""
    )


def test_every_corpus_string_round_trips(tokenizer):
    texts = corpus()
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert tokenizer.batch_decode(encoded) == texts


def test_cf_vla_sequence_round_trips(tokenizer, ids):
    first = meta_action_text([(0, 64, 2, 0, 0)])
    revised = meta_action_text([(0, 30, 1, 0, 0), (30, 64, 3, 0, 0)])
    text = f"{first} {THINKING_MARK} {critique_text((2, 0, 0), (1, 0, 0), 'braking lead')} {revised}"
    encoded = tokenizer.encode(text, add_special_tokens=False)
    assert encoded.count(ids.thinking_mark) == 1
    assert tokenizer.decode(encoded) == text


def test_bpe_compresses_the_reasoning(tokenizer):
    texts = corpus()
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    characters = sum(len(t) for t in texts)
    assert tokens < 0.35 * characters


def test_build_is_deterministic(tokenizer):
    assert build_tokenizer().get_vocab() == tokenizer.get_vocab()


def test_small_build_keeps_the_layout():
    small = build_tokenizer(bpe_vocab_size=300, traj_vocab_size=16)
    small_ids = token_ids(small)
    assert (small_ids.traj_start, small_ids.traj_vocab_size, small_ids.vocab_size) == (300, 16, 300 + 16 + 34 + 2)


def test_build_rejects_a_vocab_smaller_than_the_bytes():
    with pytest.raises(ValueError, match="byte"):
        build_tokenizer(bpe_vocab_size=100)


def test_save_and_load(tokenizer, ids, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    sample = [*corpus()[::500], "<|im_start|>user<|image_pad|><i0><i3999> Action:<|im_end|>"]
    assert (
        loaded(sample, add_special_tokens=False)["input_ids"]
        == tokenizer(sample, add_special_tokens=False)["input_ids"]
    )
    assert token_ids(loaded) == ids
    assert loaded.batch_decode(loaded(sample, add_special_tokens=False)["input_ids"]) == sample


def test_token_ids_rejects_a_tokenizer_without_trajectory_tokens():
    plain = build_tokenizer(traj_vocab_size=0)
    with pytest.raises(ValueError, match="trajectory tokens"):
        token_ids(plain)
