"""A local Ray start is tried again only when Ray's fixed raylet wait ran out.

The timeout cannot be provoked on demand, so ``ray.init`` is replaced by a stand-in that
fails the way Ray does (its exact message) and records what was asked of it."""

from __future__ import annotations

import pytest
import ray

from redux.actors import local_ray

TIMEOUT = Exception(
    "The current node timed out during startup. This could happen because some of the raylet failed to "
    "startup or the GCS has become overloaded."
)


def failing_then_starting(monkeypatch, errors):
    calls, shutdowns = [], []

    def init(**kwargs):
        calls.append(kwargs)
        if errors:
            raise errors.pop(0)

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: shutdowns.append(True))
    return calls, shutdowns


def test_a_start_that_timed_out_is_shut_down_and_tried_again_with_the_same_arguments(monkeypatch):
    calls, shutdowns = failing_then_starting(monkeypatch, [TIMEOUT])
    local_ray.init_local_ray(num_cpus=2, include_dashboard=False)
    assert calls == [{"num_cpus": 2, "include_dashboard": False}] * 2 and shutdowns == [True]


def test_a_second_timeout_and_any_other_error_are_raised(monkeypatch):
    failing_then_starting(monkeypatch, [TIMEOUT, TIMEOUT])
    with pytest.raises(Exception, match="timed out during startup"):
        local_ray.init_local_ray(num_cpus=2)
    calls, shutdowns = failing_then_starting(monkeypatch, [ValueError("num_cpus must be positive")])
    with pytest.raises(ValueError):
        local_ray.init_local_ray(num_cpus=-1)
    assert len(calls) == 1 and shutdowns == []
