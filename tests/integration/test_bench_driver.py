"""`redux bench driver` runs the real server and client over loopback and reports coherent figures."""

from redux.bench.driver import run_driver_bench


def test_driver_bench_measures_overhead_and_sessions():
    result = run_driver_bench([1], steps=3, concurrency=[2], drive_steps=3, seconds=1.0, texture_noise=4.0)
    (overhead,) = result["overhead"]
    assert overhead["cameras"] == 1 and overhead["jpeg_kb_each"] > 50  # a noisy 1080p frame, not a flat one
    # the tick's wall time contains the policy call, so what is left is the wire's
    assert 0 < overhead["overhead_p50_ms"] <= overhead["overhead_p95_ms"]
    assert overhead["policy_p50_ms"] > 0
    assert overhead["overhead_per_policy"] == overhead["overhead_p50_ms"] / overhead["policy_p50_ms"]
    (sessions,) = result["sessions"]
    assert sessions["clients"] == 2 and sessions["sessions_per_s"] > 0
    # every session makes at least drive_steps calls; both rates share one elapsed time, so
    # the ratio can be exactly 3 up to rounding
    assert sessions["drives_per_s"] / sessions["sessions_per_s"] >= 3 - 1e-9
    assert 1 <= sessions["mean_batch"] <= 2
    assert sessions["open_sessions_after"] == 0
