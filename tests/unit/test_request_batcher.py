"""Concurrent act requests are served by one batched call, and each caller gets its own rows."""

import threading

import numpy as np
import pytest

from redux.policy.interface import PolicyOutput
from redux.policy.request_batcher import RequestBatcher, split_output


def echo_policy(calls: list):
    """Plans whose every number is the observation's value; K samples each."""

    def act(observations, num_samples, greedy):
        calls.append((len(observations), num_samples, greedy))
        values = np.array(observations, dtype=np.float32)
        b, k = len(values), num_samples
        actions = np.broadcast_to(values[:, None, None, None], (b, k, 64, 2)).copy()
        return PolicyOutput(
            actions, np.zeros((b, k, 64, 3), np.float32), np.tile(values[:, None], (1, k)), 7, {"total_ms": 1.0},
            reasoning=[f"obs {v:g} sample {j}" for v in values for j in range(k)],
            extras={"reasoning_lengths": np.tile(values[:, None].astype(np.int64), (1, k))},
        )  # fmt: skip

    return act


def submit_together(batcher, requests):
    results = [None] * len(requests)

    def call(i, obs, k, greedy):
        results[i] = batcher.submit(obs, k, greedy)

    threads = [threading.Thread(target=call, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_concurrent_callers_share_one_call_and_get_their_own_rows():
    calls = []
    batcher = RequestBatcher(echo_policy(calls), max_batch=32, max_wait_s=0.5)
    requests = [([10 * i + 1, 10 * i + 2], 3, False) for i in range(4)]
    results = submit_together(batcher, requests)
    assert calls == [(8, 3, False)]
    assert batcher.calls == 1 and batcher.mean_batch == 8
    for (obs, k, _), out in zip(requests, results):
        assert out.actions.shape == (2, k, 64, 2) and out.weight_version == 7
        np.testing.assert_array_equal(out.actions[:, 0, 0, 0], obs)
        np.testing.assert_array_equal(out.log_probs[:, 0], obs)
        np.testing.assert_array_equal(out.extras["reasoning_lengths"][:, 0], obs)
        assert out.reasoning == [f"obs {v} sample {j}" for v in obs for j in range(k)]


def test_batches_respect_max_batch_and_never_mix_sampling_settings():
    calls = []
    batcher = RequestBatcher(echo_policy(calls), max_batch=4, max_wait_s=0.3)
    requests = [([1, 2, 3], 1, False), ([4, 5], 1, False), ([6], 1, True), ([7], 2, False)]
    results = submit_together(batcher, requests)
    assert all(size <= 4 for size, _, _ in calls)
    for (obs, k, greedy), out in zip(requests, results):
        np.testing.assert_array_equal(out.actions[:, 0, 0, 0], obs)
        assert out.actions.shape[1] == k
    # every call held requests of one kind only: the greedy one and the K=2 one had calls of their own
    assert (1, 1, True) in calls and (1, 2, False) in calls
    assert sum(size for size, _, _ in calls) == 7


def test_a_failed_call_fails_its_callers_and_the_batcher_lives_on():
    def act(observations, num_samples, greedy):
        if -1 in observations:
            raise ValueError("bad observation")
        return echo_policy([])(observations, num_samples, greedy)

    batcher = RequestBatcher(act, max_batch=8, max_wait_s=0.0)
    with pytest.raises(ValueError, match="bad observation"):
        batcher.submit([-1])
    np.testing.assert_array_equal(batcher.submit([3]).actions[:, 0, 0, 0], [3])
    with pytest.raises(ValueError, match="at least one"):
        batcher.submit([])


def test_split_output_keeps_every_row_once():
    out = echo_policy([])([1, 2, 3, 4, 5], 2, False)
    parts = split_output(out, [2, 0, 3])
    assert [p.actions.shape[0] for p in parts] == [2, 0, 3]
    np.testing.assert_array_equal(np.concatenate([p.actions for p in parts]), out.actions)
    assert sum((p.reasoning for p in parts), []) == out.reasoning
