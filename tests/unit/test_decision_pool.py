"""The shuffle buffer behaviour-cloning batches are drawn from."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.learner.decision_pool import DecisionPool


def numbered(start: int, n: int) -> dict[str, torch.Tensor]:
    """Decisions that carry their own number, so a draw tells where it came from."""
    ids = torch.arange(start, start + n)
    return {"id": ids, "image": ids[:, None, None].float().expand(n, 2, 3).clone()}


@settings(max_examples=50, deadline=None)
@given(capacity=st.integers(4, 40), adds=st.lists(st.integers(1, 60), min_size=1, max_size=8))
def test_the_pool_holds_exactly_the_latest_decisions(capacity, adds):
    pool = DecisionPool(capacity, 1, seed=0)
    total = 0
    for n in adds:
        pool.add(numbered(total, n))
        total += n
    held = set(pool.tensors["id"][: pool.size].tolist())
    assert held == set(range(max(0, total - capacity), total))
    drawn = pool.sample(pool.size)
    assert set(drawn["id"].tolist()) == held  # distinct: a full draw is a permutation
    assert torch.equal(drawn["image"][:, 0, 0], drawn["id"].float())  # tensors stay aligned per decision


def test_draws_mix_the_whole_pool_not_the_last_arrivals():
    pool = DecisionPool(1000, 32, seed=0)
    for start in range(0, 1000, 32):
        pool.add(numbered(start, 32))
    drawn = torch.cat([pool.sample(32)["id"] for _ in range(200)])
    # uniform over 1000: a quarter of draws from the oldest quarter, give or take
    assert 0.2 < (drawn < 250).float().mean().item() < 0.3
    last = pool.sample(32)["id"]
    assert last.max() - last.min() > 500


def test_bad_input_is_refused_and_the_pool_is_unchanged():
    with pytest.raises(ValueError, match="at least one step's decisions"):
        DecisionPool(16, 32, seed=0)
    pool = DecisionPool(8, 2, seed=0)
    pool.add(numbered(0, 4))
    with pytest.raises(ValueError, match="arrives as"):
        pool.add({"id": torch.arange(2), "image": torch.zeros(2, 3, 3)})
    with pytest.raises(KeyError, match="differ"):
        pool.add({"id": torch.arange(2)})
    with pytest.raises(ValueError, match="leading decision axis"):
        pool.add({"id": torch.arange(2), "image": torch.zeros(3, 2, 3)})
    with pytest.raises(ValueError, match="cannot draw 5"):
        pool.sample(5)
    assert pool.size == 4 and sorted(pool.sample(4)["id"].tolist()) == [0, 1, 2, 3]
