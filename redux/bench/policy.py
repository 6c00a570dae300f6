"""`redux bench policy`: what each reasoning mode costs an Alpamayo decision.

One network of the preset is built and every mode acts with it (a mode is a decoding
grammar, not other weights), greedily, on synthetic observations of the preset's
cameras, channels and image size. Measured: the decision latency at batch 1 (p50/p95
over ``repeats`` calls, after warm-up) and the decisions per second at each batch size,
of which the best is reported. The modes take turns call by call, so a load that
drifts during the run (another job on the machine) weighs on all of them alike, and
the ratios to the ``none`` mode compare like with like; absolute numbers depend on the
cores and threads.

Random weights rarely emit ``<|traj_future_start|>`` early, so ``coc`` and ``cfvla``
decode their full ``max_reasoning_tokens``: the measured cost is the mode's worst case
(``tokens`` says how many were decoded; ``lcdrive`` always decodes its fixed rhythm).
"""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import torch

from redux.config import PolicyConfig, SimConfig
from redux.policy.alpamayo.presets import ModelPreset, get_preset
from redux.policy.alpamayo.reasoning import MODES
from redux.policy.torch_engine import make_torch_policy
from redux.sim_bridge.session import Observation


class BenchConfigError(ValueError):
    """The bench was asked for something it cannot measure (raised before any measurement)."""


def synthetic_observations(preset: ModelPreset, n: int, seed: int = 0) -> list[Observation]:
    """``n`` observations the preset can read: random 0/255 images of its cameras (minisim's
    BEV raster for the embedded presets) at its size and channels, ego histories of straight
    driving at 5–12 m/s."""
    rng = np.random.default_rng(seed)
    shape = (preset.frames, preset.vision.channels, preset.image_height, preset.image_width)
    out = []
    for _ in range(n):
        history = np.zeros((16, 3), dtype=np.float32)
        history[:, 0] = -rng.uniform(5.0, 12.0) * 0.1 * np.arange(15, -1, -1)
        cameras = {c: rng.choice(np.array([0, 255], dtype=np.uint8), shape) for c in preset.cameras}
        out.append(Observation(cameras, history, np.full((20, 3), np.nan), time_us=0))
    return out


def _policies(configs: list[PolicyConfig], seed: int) -> dict:
    """One policy per mode, all on the network the first one built."""
    from redux.policy.alpamayo.policy import AlpamayoPolicy

    first = make_torch_policy(configs[0], SimConfig(), seed=seed)  # also sets the intra-op threads
    policies = {configs[0].reasoning: first}
    for cfg in configs[1:]:
        policies[cfg.reasoning] = AlpamayoPolicy(first.model, first.tokenizer, cfg, seed=seed)
    return policies


def _timed(policy, observations: list[Observation]) -> tuple[float, object]:
    start = time.perf_counter()
    out = policy.act(observations, greedy=True)
    return (time.perf_counter() - start) * 1e3, out


def _measure(
    policies: dict, preset: ModelPreset, batches: list[int], repeats: int, warmup: int, seed: int, progress
) -> list[dict]:
    single = synthetic_observations(preset, 1, seed)
    for policy in policies.values():
        for _ in range(warmup):  # first calls pay for allocations and lazy setup
            policy.act(single, greedy=True)
    samples = {mode: {"latency": [], "reasoning": [], "flow": [], "tokens": []} for mode in policies}
    for _ in range(repeats):
        for mode, policy in policies.items():  # the modes take turns: drifting load hits all alike
            ms, out = _timed(policy, single)
            samples[mode]["latency"].append(ms)
            samples[mode]["reasoning"].append(out.timings["reasoning_ms"])
            samples[mode]["flow"].append(out.timings["flow_ms"])
            samples[mode]["tokens"].append(float(out.extras["reasoning_lengths"].mean()))
    rows = {
        mode: {
            "mode": mode,
            "p50_ms": float(np.percentile(s["latency"], 50)),
            "p95_ms": float(np.percentile(s["latency"], 95)),
            "reasoning_ms": float(np.median(s["reasoning"])),
            "flow_ms": float(np.median(s["flow"])),
            "tokens": float(np.mean(s["tokens"])),
        }
        for mode, s in samples.items()
    }
    progress("latency at batch 1")
    rates: dict[str, dict[int, float]] = {mode: {} for mode in policies}
    for b in batches:
        observations = synthetic_observations(preset, b, seed + b)
        elapsed = dict.fromkeys(policies, 0.0)
        for policy in policies.values():
            policy.act(observations, greedy=True)  # warm-up at this batch size
        for _ in range(repeats):
            for mode, policy in policies.items():
                elapsed[mode] += _timed(policy, observations)[0] / 1e3
        for mode in policies:
            rates[mode][b] = b * repeats / elapsed[mode]
            rows[mode][f"samples_per_s@{b}"] = rates[mode][b]
        progress(f"samples/s at batch {b}")
    for mode, row in rows.items():
        best = max(rates[mode], key=rates[mode].get)
        row["best_samples_per_s"], row["best_batch"] = rates[mode][best], best
    return list(rows.values())


def run_policy_bench(
    preset: str,
    engine: str = "torch",
    modes: list[str] | None = None,
    batches: list[int] | None = None,
    repeats: int = 20,
    warmup: int = 2,
    threads: int = 1,
    tokenizer: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Latency at batch 1 and throughput per batch size for each reasoning mode of ``preset``.

    Raises :class:`BenchConfigError` before measuring anything if the request is invalid."""
    modes = list(MODES) if modes is None else modes
    batches = [1, 2, 4, 8] if batches is None else batches
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise BenchConfigError(f"unknown reasoning modes {unknown}; known: {', '.join(MODES)}")
    if not batches or min(batches) < 1 or repeats < 1 or warmup < 0 or threads < 1:
        raise BenchConfigError("batches must be positive sizes, repeats and threads at least 1, warmup non-negative")
    try:
        p = get_preset(preset)
        configs = [
            PolicyConfig(kind="alpamayo", engine=engine, preset=preset, reasoning=mode, tokenizer=tokenizer,
                         torch_threads=threads)  # fmt: skip
            for mode in modes
        ]
    except ValueError as err:  # an unknown preset, or a pydantic ValidationError (e.g. the engine)
        raise BenchConfigError(str(err)) from None
    if p.real and tokenizer is None:
        raise BenchConfigError(f"preset {preset} extends Qwen's vocabulary: give the published tokenizer directory")
    threads_before = torch.get_num_threads()
    try:
        policies = _policies(configs, seed)
        rows = _measure(policies, p, batches, repeats, warmup, seed, progress or (lambda _: None))
    finally:
        torch.set_num_threads(threads_before)
    ratios = {}
    base = next((r for r in rows if r["mode"] == "none"), None)
    if base is not None:
        for row in rows:
            if row["mode"] != "none":
                ratios[row["mode"]] = {
                    "latency_over_none": row["p50_ms"] / base["p50_ms"],
                    "throughput_over_none": row["best_samples_per_s"] / base["best_samples_per_s"],
                }
    return {
        "preset": preset,
        "engine": engine,
        "threads": threads,
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "warmup": warmup,
        "batches": batches,
        "images_per_decision": len(p.cameras) * p.frames,
        "image_size": [p.image_width, p.image_height],
        "max_reasoning_tokens": p.max_reasoning_tokens,
        "flow_steps": p.flow_steps,
        "rows": rows,
        "ratios": ratios,
    }
