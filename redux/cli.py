"""`redux`: the user's surface (see README)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console as RichConsole
from rich.table import Table

from redux.config import ConfigError, RunConfig, config_to_yaml, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="alpamayo-redux: closed-loop rollouts and training")
bench_app = typer.Typer(no_args_is_help=True, help="measure throughput to tune the system")
app.add_typer(bench_app, name="bench")

ConfigArg = Annotated[Optional[Path], typer.Argument(help="experiment YAML (configs/…); defaults if omitted")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override a key: --set learner.steps=10")]


def _config(path: Path | None, overrides: list[str] | None) -> RunConfig:
    try:
        return load_config(path, overrides or [])
    except ConfigError as err:
        typer.secho(f"config error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None


def _write_json(out: Path, name: str, data: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(data, indent=2))
    return path


@app.command()
def run(
    config: ConfigArg = None,
    set_: SetOpt = None,
    resume: Annotated[Optional[Path], typer.Option(help="continue a previous run directory")] = None,
):
    """The main job: rollout actors + Redis buffer + DeepSpeed learner, with a live console."""
    from redux.actors.job import run_job
    from redux.buffer.connection import RedisUnreachable

    if resume is not None and config is None:
        config = resume / "config.yaml"
    cfg = _config(config, set_)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run_job(cfg, resume=resume)
    except RedisUnreachable as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(1) from None
    except ConfigError as err:
        typer.secho(f"config error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "buffer"}, indent=2))


@app.command()
def console(
    redis: Annotated[str, typer.Option(help="the job's Redis URL (printed in its console title)")],
    run: Annotated[Optional[str], typer.Option(help="run name; the most recently active one if omitted")] = None,
    seconds: Annotated[Optional[float], typer.Option(help="stop after this long (default: until Ctrl-C)")] = None,
):
    """Attach to a running job's stats stream."""
    from redux.buffer.connection import RedisUnreachable
    from redux.console import attach

    try:
        attach(redis, run, RunConfig(), seconds)
    except (RedisUnreachable, LookupError) as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(1) from None


@app.command("eval")
def evaluate(
    policy: Annotated[str, typer.Option(help="expert | constant-velocity | lane-keeper | a run or checkpoint dir")],
    suite: Annotated[str, typer.Option(help="minisim suite, NAME or NAME:N (the first N scenes)")] = "minisim-test:50",
    out: Annotated[Path, typer.Option(help="output directory")] = Path("runs/eval"),
    actors: Annotated[int, typer.Option(help="Ray actors to spread the scenes over (1: in-process)")] = 1,
    video: Annotated[int, typer.Option(help="write GIF videos of the first K rollouts")] = 0,
    scenario: Annotated[Optional[list[str]], typer.Option(help="drive only the suite's scenes of this scenario (repeatable)")] = None,
    config: Annotated[Optional[Path], typer.Option(help="experiment YAML for sim/policy settings")] = None,
    set_: SetOpt = None,
):
    """Closed-loop evaluation on minisim: summary.json, metrics.parquet, videos."""
    from rich.progress import Progress

    from redux.actors.evaluation_job import run_evaluation

    cfg = _config(config, set_)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"eval {policy}", total=None)
        summary = run_evaluation(
            cfg, policy, suite, out, actors, video, progress=lambda done, total: bar.update(task, completed=done, total=total),
            scenarios=scenario,
        )
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "hard"}, indent=2))
    typer.echo(f"wrote {out}/summary.json, metrics.parquet" + (f", {video} videos" if video else ""))


@app.command("select")
def select(
    run_dir: Annotated[Path, typer.Argument(help="a run directory with checkpoints/")],
    suite: Annotated[str, typer.Option(help="validation suite, NAME or NAME:N")] = "minisim-val:50",
    actors: Annotated[int, typer.Option(help="Ray actors per evaluation (1: in-process)")] = 1,
    config: Annotated[Optional[Path], typer.Option(help="experiment YAML for sim settings")] = None,
    set_: SetOpt = None,
):
    """Score every kept checkpoint closed loop and name the best driver (selection.json)."""
    from redux.actors.checkpoint_selection import select_checkpoint

    cfg = _config(config, set_)
    result = select_checkpoint(
        cfg, run_dir, suite, actors, progress=lambda row: typer.echo(f"  {row['checkpoint']}: {row['driving_score']:.3f}")
    )
    _table(f"redux select {run_dir} on {suite}", result["rows"])
    typer.echo(f"best: {result['best']['checkpoint']} (wrote {run_dir}/selection.json)")


@app.command("compare")
def compare(
    a: Annotated[Path, typer.Argument(help="a `redux eval --out` folder (policy A)")],
    b: Annotated[Path, typer.Argument(help="another, of the same suite (policy B)")],
    resamples: Annotated[int, typer.Option(help="bootstrap resamples over scenes")] = 10_000,
    json_: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
):
    """Paired comparison of two evaluations scene by scene: A's driving score minus B's, 95 % interval."""
    from redux.eval.paired import compare_evaluations

    try:
        result = compare_evaluations(a, b, resamples)
    except (ValueError, FileNotFoundError) as error:
        raise typer.BadParameter(str(error)) from error
    if json_:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    low, high = result.interval_95
    typer.echo(f"{result.scenes} scenes: A {result.score_a:.3f}, B {result.score_b:.3f}")
    typer.echo(f"A - B = {result.difference:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}] ({result.resamples} resamples)")
    typer.echo(f"A better in {result.better_a} scenes, B better in {result.better_b}, {result.ties} ties")
    differing = {name: split for name, split in result.by_scenario.items() if split.better_a or split.better_b}
    if differing:
        typer.echo("where they differ, by scenario:")
        for name, split in sorted(differing.items(), key=lambda item: item[1].difference):
            typer.echo(
                f"  {name:<22} A better in {split.better_a}, B in {split.better_b} "
                f"of {split.scenes} scenes, mean A - B {split.difference:+.3f}"
            )


@app.command("config")
def show_config(config: ConfigArg = None, set_: SetOpt = None):
    """Print the fully resolved config: every effective key and its value."""
    typer.echo(config_to_yaml(_config(config, set_)), nl=False)


def _table(title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, justify="right")
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    RichConsole().print(table)


@bench_app.command("actors")
def bench_actors(
    config: ConfigArg = None,
    set_: SetOpt = None,
    actors: Annotated[str, typer.Option(help="comma-separated actor counts")] = "1,2",
    seconds: Annotated[float, typer.Option(help="measurement time per point")] = 20.0,
    out: Annotated[Path, typer.Option(help="directory for bench.json")] = Path("runs/bench-actors"),
):
    """Rollout throughput per actor count, and its ratio to the same work in-process."""
    from redux.bench.actors import run_actor_bench

    cfg = _config(config, set_)
    counts = [int(x) for x in actors.split(",") if x.strip()]
    result = run_actor_bench(cfg, counts, seconds, progress=lambda row: typer.echo(f"  measured N={row['actors']}"))
    path = _write_json(out, "bench.json", result)
    _table("redux bench actors", result["rows"])
    typer.echo(f"wrote {path}")


@bench_app.command("sim")
def bench_sim(
    config: ConfigArg = None,
    set_: SetOpt = None,
    batch: Annotated[int, typer.Option(help="sessions stepping together")] = 32,
    steps: Annotated[int, typer.Option(help="steps per measurement without rendering")] = 200,
    out: Annotated[Path, typer.Option()] = Path("runs/bench-sim"),
):
    """minisim session-steps/s on one core, with and without rendering; ms per camera frame."""
    from redux.bench.sim import run_sim_bench

    cfg = _config(config, set_)
    cfg.sim.suite = cfg.sim.suite if cfg.sim.kind == "minisim" else "minisim-test"
    result = run_sim_bench(cfg, batch, steps)
    path = _write_json(out, "bench.json", result)
    _table("redux bench sim", result["rows"])
    _table("ms per camera frame", [{"camera": k, "ms": v} for k, v in result["frame_ms"].items()])
    typer.echo(f"wrote {path}")


@bench_app.command("learner")
def bench_learner(
    config: ConfigArg = None,
    set_: SetOpt = None,
    steps: Annotated[int, typer.Option(help="optimiser steps per trainer")] = 30,
    out: Annotated[Path, typer.Option()] = Path("runs/bench-learner"),
):
    """Learner samples/s: DeepSpeed vs a plain torch loop on the same model and batches."""
    from redux.bench.learner import run_learner_bench

    result = run_learner_bench(_config(config, set_), steps)
    path = _write_json(out, "bench.json", result)
    _table("redux bench learner", result["rows"])
    typer.echo(f"wrote {path}")


@bench_app.command("sync")
def bench_sync(
    preset: Annotated[Optional[str], typer.Option(help="alpamayo preset: measure real policy replicas")] = None,
    engine: Annotated[str, typer.Option(help="with --preset: comma-separated engines, torch,vllm")] = "torch,vllm",
    sizes_mb: Annotated[str, typer.Option(help="without --preset: comma-separated model sizes in MB")] = "1,16,128",
    transports: Annotated[str, typer.Option(help="comma-separated: object_store,redis")] = "object_store,redis",
    repeats: Annotated[int, typer.Option()] = 3,
    out: Annotated[Path, typer.Option()] = Path("runs/bench-sync"),
):
    """Weight publish → loaded latency: per transport and size, or into a preset's torch / vLLM replica."""
    names = [x.strip() for x in transports.split(",") if x.strip()]
    if preset is not None:
        from redux.bench.replica_sync import run_replica_sync_bench

        engines = [x.strip() for x in engine.split(",") if x.strip()]
        result = run_replica_sync_bench(
            preset, engines, names[0], repeats, progress=lambda row: typer.echo(f"  measured {row['engine']}")
        )
        title = f"redux bench sync: {preset} over {names[0]}"
    else:
        from redux.bench.sync import run_sync_bench

        sizes = [float(x) for x in sizes_mb.split(",") if x.strip()]
        result = run_sync_bench(sizes, names, repeats)
        title = "redux bench sync"
    path = _write_json(out, "bench.json", result)
    _table(title, result["rows"])
    typer.echo(f"wrote {path}")


@bench_app.command("driver")
def bench_driver(
    cameras: Annotated[str, typer.Option(help="comma-separated counts of 1080p JPEG cameras per tick")] = "1,4",
    steps: Annotated[int, typer.Option(help="timed ticks per camera count")] = 40,
    clients: Annotated[str, typer.Option(help="comma-separated concurrent sessions for sessions/s")] = "1,4,8",
    drive_steps: Annotated[int, typer.Option(help="drive calls per session in the sessions/s runs")] = 20,
    seconds: Annotated[float, typer.Option(help="measurement time per concurrency")] = 20.0,
    texture_noise: Annotated[float, typer.Option(help="std of noise added to minisim's flat frames before JPEG")] = 4.0,
    out: Annotated[Path, typer.Option()] = Path("runs/bench-driver"),
):
    """The egodriver wire: per-tick overhead beside the policy call, and sessions/s a server sustains (tiny policy)."""
    from redux.bench.driver import run_driver_bench

    result = run_driver_bench(
        [int(x) for x in cameras.split(",") if x.strip()], steps, [int(x) for x in clients.split(",") if x.strip()],
        drive_steps, seconds, texture_noise, progress=lambda what: typer.echo(f"  measured {what}"),
    )  # fmt: skip
    path = _write_json(out, "bench.json", result)
    _table("egodriver overhead per tick (wall − policy call)", result["overhead"])
    _table("sessions a server sustains", result["sessions"])
    typer.echo(f"wrote {path}")


@bench_app.command("policy")
def bench_policy(
    preset: Annotated[str, typer.Option(help="alpamayo preset: tiny, student, teacher, …")] = "tiny",
    engine: Annotated[str, typer.Option(help="comma-separated engines: torch, torch-tokens, vllm, vllm-tokens")] = "torch",
    modes: Annotated[str, typer.Option(help="comma-separated reasoning modes")] = "none,coc,cfvla,lcdrive",
    batches: Annotated[str, typer.Option(help="comma-separated batch sizes for samples/s")] = "1,2,4,8",
    repeats: Annotated[int, typer.Option(help="timed calls per point (after warm-up)")] = 20,
    threads: Annotated[int, typer.Option(help="torch intra-op threads")] = 1,
    tokenizer: Annotated[
        Optional[str], typer.Option(help="tokenizer directory (presets on Qwen's vocabulary), or 'embedded' for random weights")
    ] = None,
    device: Annotated[str, typer.Option(help="torch engine: cpu, cuda, cuda:1")] = "cpu",
    dtype: Annotated[str, typer.Option(help="torch engine weights: float32, bfloat16, float16")] = "float32",
    flow_steps: Annotated[Optional[int], typer.Option(help="Euler steps of the flow expert (default: the preset's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    out: Annotated[Path, typer.Option()] = Path("runs/bench-policy"),
):
    """Alpamayo decision latency (batch 1, greedy) and samples/s per batch size, per reasoning mode and engine."""
    from redux.bench.policy import BenchConfigError, run_policy_bench

    names = [x.strip() for x in modes.split(",") if x.strip()]
    sizes = [int(x) for x in batches.split(",") if x.strip()]
    try:
        result = run_policy_bench(
            preset, engine, names, sizes, repeats, threads=threads, tokenizer=tokenizer,
            progress=lambda what: typer.echo(f"  measured {what}", err=as_json),
            device=device, dtype=dtype, flow_steps=flow_steps,
        )  # fmt: skip
    except BenchConfigError as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None
    path = _write_json(out, "bench.json", result)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    latency = ("engine", "mode", "p50_ms", "p95_ms", "prepare_ms", "reasoning_ms", "flow_ms", "tokens")
    latency += ("gpu_kernel_ms", "kernels", "gpu_busy") if "gpu_busy" in result["rows"][0] else ()
    where = result["device"] if device != "cpu" else f"{threads} thread(s)"
    _table(
        f"{preset} ms per decision at batch 1 ({where}, {dtype}, {result['flow_steps']} flow steps)",
        [{k: row[k] for k in latency} for row in result["rows"]],
    )
    short = {"best_samples_per_s": "best", "best_batch": "best batch"}
    rates = [
        {short.get(k, k.replace("samples_per_s@", "batch ")): v for k, v in row.items() if k in ("engine", "mode") or k not in latency}
        for row in result["rows"]
    ]
    _table(f"{preset} samples/s per batch size", rates)
    if result["ratios"]:
        ratios = [{"mode": m, "latency ÷ none": r["latency_over_none"], "samples/s ÷ none": r["throughput_over_none"]}
                  for m, r in result["ratios"].items()]  # fmt: skip
        _table("ratios to mode none (this run)", ratios)
    if result["engine_ratios"]:
        ratios = [{"engine/mode": m, "latency ÷ torch": r["latency_over_torch"], "samples/s ÷ torch": r["throughput_over_torch"]}
                  for m, r in result["engine_ratios"].items()]  # fmt: skip
        _table("ratios to the torch engine (this run)", ratios)
    if result["skipped"]:
        typer.echo(f"not measured (torch only): {', '.join(result['skipped'])}")
    typer.echo(f"wrote {path}")


policy_app = typer.Typer(no_args_is_help=True, help="inspect the Alpamayo policy presets")
app.add_typer(policy_app, name="policy")


@policy_app.command("info")
def policy_info(
    preset: Annotated[str, typer.Option(help="alpamayo-r1-10b, student-1b, tiny-0.5b, teacher, student, tiny")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
):
    """Parameter counts per component and main dimensions of a preset (built on the meta device)."""
    from redux.policy.alpamayo.info import COMPONENTS, parameter_counts

    try:
        info = parameter_counts(preset)
    except ValueError as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    parts = ["total", "backbone", *COMPONENTS]
    _table(f"{preset} parameters", [{"part": k, "parameters": f"{info[k]:,}", "B": info[k] / 1e9} for k in parts])
    _table(f"{preset} dimensions", [{"dimension": k, "value": v} for k, v in info["dimensions"].items()])


@policy_app.command("inputs")
def policy_inputs(
    policy: Annotated[str, typer.Argument(help="a run or checkpoint dir, or a reference policy")],
    suite: Annotated[str, typer.Option(help="minisim suite the expert drives, NAME or NAME:N")] = "minisim-val:16",
    every: Annotated[int, typer.Option(help="measure at every K-th step of the expert's drive")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    config: Annotated[Optional[Path], typer.Option(help="experiment YAML for sim settings")] = None,
    set_: SetOpt = None,
):
    """Does the policy read its camera and ego history? Plan changes when each is taken away."""
    from redux.policy.input_ablation import expert_drive_observations, measure_input_use
    from redux.policy.loading import make_policy, with_policy_inputs
    from redux.sim_bridge.minisim.suites import parse_suite, suite_scene_ids

    name, count = parse_suite(suite)
    cfg = with_policy_inputs(_config(config, set_), policy)
    cfg.sim.kind, cfg.sim.suite = "minisim", name
    scene_ids = suite_scene_ids(name, count)
    agent = make_policy(policy, cfg)
    rows = measure_input_use(agent, expert_drive_observations(cfg.sim, scene_ids, every))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    short = {"curvature_per_m": "curv. 1/m", "acceleration_m_s2": "accel. m/s²", "curvature_share_of_spread": "curv. ÷ spread",
             "acceleration_share_of_spread": "accel. ÷ spread", "decisions": "n"}  # fmt: skip
    _table(f"{policy}: first 2 s of greedy plans on the expert's drive of {suite}", [{short.get(k, k): v for k, v in r.items()} for r in rows])


@policy_app.command("plan-units")
def policy_plan_units(
    config: Annotated[Path, typer.Option(help="the recipe whose demonstrations set the units")] = Path("configs/teacher.yaml"),
    sessions: Annotated[int, typer.Option(help="minisim sessions driven at once")] = 32,
    calls: Annotated[int, typer.Option(help="generator calls of actors.rollout_steps decisions per session")] = 32,
    out: Annotated[Optional[Path], typer.Option(help="where to write; default: the shipped minisim units")] = None,
    set_: SetOpt = None,
):
    """Measure the per-waypoint `policy.plan_units: minisim` from the recipe's expert demonstrations."""
    import numpy as np
    from rich.progress import Progress

    from redux.actors.generators.demonstrations import record_demonstrations
    from redux.policy.alpamayo.plan_units import MINISIM_STATS, stats_of, write_stats

    cfg = _config(config, set_)
    with Progress(transient=True) as bar:
        task = bar.add_task("demonstrations", total=calls)
        records = record_demonstrations(cfg, sessions, calls, on_call=lambda done, n: bar.update(task, completed=done))
    plans = np.concatenate([r.tensors["target_actions"] for r in records])
    shift, scale = stats_of(plans)
    path = out or MINISIM_STATS
    provenance = {
        "command": f"redux policy plan-units --config {config} --sessions {sessions} --calls {calls}",
        "suite": cfg.sim.suite, "decisions": int(len(plans)), "demo_noise": cfg.actors.demo_noise,
    }  # fmt: skip
    write_stats(path, shift, scale, provenance)
    rows = [{"seconds ahead": f"{(k + 1) / 10:.1f}", "accel. shift": float(shift[k, 0]), "accel. scale": float(scale[k, 0]),
             "curv. shift": float(shift[k, 1]), "curv. scale": float(scale[k, 1])} for k in (0, 4, 9, 19, 39, 63)]  # fmt: skip
    _table(f"plan units from {len(plans)} decisions (published-normalised units)", rows)
    typer.echo(f"wrote {path}")


from redux.sim_bridge.alpasim.settings import DriverServerSettings, DriveSettings  # noqa: E402 - pydantic only

_SERVE, _DRIVE = DriverServerSettings(), DriveSettings()  # the defaults the options below show


@app.command("serve-driver")
def serve_driver(
    policy: Annotated[Optional[str], typer.Option(help="expert | constant-velocity | lane-keeper | a run or checkpoint dir")] = None,
    preset: Annotated[Optional[str], typer.Option(help="an Alpamayo preset: alpamayo-r1-10b, student-1b, tiny, …")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="with --preset: published weights; alone: a run or checkpoint dir")] = None,
    port: Annotated[int, typer.Option(help="port to serve on (0: any free port)")] = _SERVE.port,
    host: Annotated[str, typer.Option(help="address to bind")] = _SERVE.host,
    max_batch: Annotated[int, typer.Option(help="drive calls batched into one policy call")] = _SERVE.max_batch,
    max_wait_ms: Annotated[float, typer.Option(help="how long a drive call waits for others to join its batch")] = _SERVE.max_wait_ms,
    sample: Annotated[bool, typer.Option("--sample", help="sample plans instead of acting greedily (RL rollouts)")] = False,
    config: Annotated[Optional[Path], typer.Option(help="experiment YAML for policy settings")] = None,
    set_: SetOpt = None,
):
    """Serve a policy as an Alpasim egodriver (gRPC) until Ctrl-C, which drains calls in flight."""
    from pydantic import ValidationError

    from redux.sim_bridge.alpasim.serve import DriverServer, load_served_policy, serve_until_signal

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _config(config, set_)
    try:
        settings = DriverServerSettings(host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, greedy=not sample)
        served, name = load_served_policy(cfg, policy, preset, checkpoint)
        server = DriverServer(served, settings, cfg.policy.num_samples, name)
    except (ValidationError, ValueError, FileNotFoundError, OSError) as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None
    cameras = ", ".join(server.servicer.cameras) or "none"
    typer.echo(f"serving {name} on {server.address} (reads cameras: {cameras}); Ctrl-C drains and stops", err=True)
    serve_until_signal(server)
    typer.echo("stopped", err=True)


@app.command("drive")
def drive(
    driver: Annotated[str, typer.Option(help="HOST:PORT of an egodriver server (redux serve-driver, or anyone's)")],
    suite: Annotated[str, typer.Option(help="minisim suite, NAME or NAME:N (the first N scenes)")] = "minisim-test:50",
    out: Annotated[Path, typer.Option(help="output directory")] = Path("runs/drive"),
    concurrent: Annotated[Optional[int], typer.Option(help="sessions driven together (default sim.sessions_per_actor)")] = None,
    cameras: Annotated[Optional[str], typer.Option(help="comma-separated cameras to send, or 'none' (default: sim.cameras, else all)")] = None,
    image_format: Annotated[str, typer.Option(help="RGB frames as jpeg (as Alpasim) or png (lossless)")] = _DRIVE.image_format,
    config: Annotated[Optional[Path], typer.Option(help="experiment YAML for sim settings")] = None,
    set_: SetOpt = None,
):
    """minisim plays the Alpasim runtime against an egodriver server: summary.json and metrics.parquet, as redux eval."""
    from pydantic import ValidationError
    from rich.progress import Progress

    from redux.sim_bridge.alpasim.drive_job import run_drive
    from redux.sim_bridge.alpasim.runtime_client import DriverRefused

    cfg = _config(config, set_)
    camera_list = None if cameras is None else [c.strip() for c in cameras.split(",") if c.strip() and c.strip() != "none"]
    chosen = {"concurrent": concurrent, "cameras": camera_list, "image_format": image_format}
    try:
        settings = DriveSettings(**{k: v for k, v in chosen.items() if v is not None})
        with Progress(transient=True) as bar:
            task = bar.add_task(f"drive {driver}", total=None)
            summary = run_drive(
                cfg, driver, suite, out, settings, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    except (ValidationError, ValueError) as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None
    except (ConnectionError, DriverRefused) as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "hard"}, indent=2))
    typer.echo(f"wrote {out}/summary.json, metrics.parquet")


@app.command("serve-runtime")
def serve_runtime(
    suite: Annotated[str, typer.Option(help="minisim suite served, NAME or NAME:N (the first N scenes)")] = "minisim-test:50",
    port: Annotated[int, typer.Option(help="port to serve on (0: any free port)")] = 50052,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    cameras: Annotated[Optional[str], typer.Option(help="comma-separated cameras to send, or 'none' (default: sim.cameras, else all)")] = None,
    image_format: Annotated[str, typer.Option(help="RGB frames as jpeg (as Alpasim) or png (lossless)")] = "jpeg",
    config: Annotated[Optional[Path], typer.Option(help="experiment YAML for sim settings")] = None,
    set_: SetOpt = None,
):
    """minisim as Alpasim's RuntimeService (daemon mode: simulate against your egodriver servers) until Ctrl-C or shut_down."""
    from redux.sim_bridge.alpasim.drive_job import ALL_MINISIM_CAMERAS
    from redux.sim_bridge.alpasim.runtime_server import RuntimeServer, RuntimeServerSettings, serve_runtime_until_signal

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _config(config, set_)
    if cameras is not None:
        cfg.sim.cameras = [c.strip() for c in cameras.split(",") if c.strip() and c.strip() != "none"]
    elif not cfg.sim.cameras:
        cfg.sim.cameras = list(ALL_MINISIM_CAMERAS)
    try:
        if image_format not in ("jpeg", "png"):
            raise ValueError(f"--image-format must be jpeg or png, not {image_format!r}")
        server = RuntimeServer(cfg, suite, RuntimeServerSettings(host=host, port=port, image_format=image_format))
    except (ValueError, OSError) as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None
    scenes = server.service.scene_ids
    typer.echo(f"minisim runtime for {server.service.suite} ({len(scenes)} scenes, ids '{server.service.suite}/<id>') "
               f"on {server.address}; Ctrl-C drains and stops", err=True)  # fmt: skip
    serve_runtime_until_signal(server)
    typer.echo("stopped", err=True)
