"""Can the flow expert alone learn the next second's steering from a frozen network's cache?

    python tools/probes/expert_readout.py runs/probe-data.pkl runs/teacher/checkpoints/step00000500 --steps 200
    python tools/probes/expert_readout.py runs/probe-data.pkl CKPT --vision-only    # action tokens see the image only
    python tools/probes/expert_readout.py runs/probe-data.pkl --plan-units minisim --flow-prediction data   # fresh weights

Each decision's teacher-forced prefix (prompt and target reasoning up to
``<|traj_future_start|>``, as the learner builds it) is computed once with the
checkpoint's weights (or fresh ones, with the units and parameterisation given) and
kept. Then only the expert, ``action_in_proj`` and ``action_out_proj`` train, by the
learner's flow loss in the network's plan units and ``flow_prediction`` with
``--flow-samples`` noise draws per decision (or, ``--objective regression``, by the
squared error of the plan it outputs from an all-zero input at t = 0), on the first
80 % of the recording. Every
100 steps greedy plans on the last 20 % are scored by the R² of the next second's mean
curvature, the curvature 3–4 s ahead and the next second's acceleration.
"""

from __future__ import annotations

import argparse
import pickle
import time

import numpy as np
import torch

from redux.config import load_config
from redux.learner.batch import collate
from redux.learner.objectives.vla import BATCH_KEYS, to_teacher_forced
from redux.policy.alpamayo.model import ExpertPrefix
from redux.policy.alpamayo.training import flow_loss, teacher_forced_losses
from redux.policy.flow_matching import data_prediction_loss, euler_sample
from vision_readout import probe_network, summary  # the probes' network and three numbers of a plan

CHUNK = 64


def cached_prefixes(model, data: dict, vision_only: bool) -> list[tuple[int, int, ExpertPrefix]]:
    """(start, end, prefix) per chunk of decisions: the prefix the learner's expert reads."""
    seen = {}
    expert_output = model.expert_output

    def capture(x, t, prefix):
        seen["prefix"] = prefix
        return torch.zeros_like(x)

    model.expert_output = capture
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, len(data["frames"]), CHUNK):
                rows = {k: v[start : start + CHUNK] for k, v in data.items()}
                batch = to_teacher_forced(model, rows)
                teacher_forced_losses(model, batch, model.prompts.ids.traj_future_start)
                prefix = seen["prefix"]
                if vision_only:  # the image positions and the action tokens stay readable
                    keep = torch.zeros(
                        prefix.attention_mask.shape[0], prefix.attention_mask.shape[-1], dtype=torch.bool
                    )
                    keep[:, : batch.prompt.image_mask.shape[1]] = batch.prompt.image_mask
                    keep[:, -prefix.attention_mask.shape[2] :] = True
                    blocked = torch.finfo(prefix.attention_mask.dtype).min
                    prefix.attention_mask = torch.where(keep[:, None, None, :], prefix.attention_mask, blocked)
                chunks.append((start, start + len(rows["frames"]), prefix))
    finally:
        model.expert_output = expert_output
    return chunks


def rows_of(prefix: ExpertPrefix, rows: torch.Tensor) -> ExpertPrefix:
    pairs = [(k[rows], v[rows]) for k, v in prefix.key_values]
    return ExpertPrefix(pairs, prefix.attention_mask[rows], prefix.action_positions[:, rows])


def plan_of(model, prefix: ExpertPrefix, n: int, objective: str) -> torch.Tensor:
    """Greedy plans in the network's units: Euler from zero, or the regression's one output."""
    zero = torch.zeros(n, 64, 2)
    if objective == "regression":
        return model.expert_output(zero, zero[:, 0, 0], prefix)
    return euler_sample(lambda x, t: model.velocity(x, t, prefix), zero, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a recording made by record.py")
    parser.add_argument("policy", nargs="?", help="a checkpoint of one of our alpamayo runs; omitted: fresh weights")
    parser.add_argument("--config", default="configs/teacher.yaml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--flow-samples", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--plan-units", choices=["published", "minisim"], help="fresh weights: policy.plan_units")
    parser.add_argument("--flow-prediction", choices=["velocity", "data"], help="fresh weights: policy.flow_prediction")
    parser.add_argument("--objective", choices=["flow", "regression"], default="flow")
    parser.add_argument("--vision-only", action="store_true", help="mask every cache position but the image's")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    if args.policy and (args.plan_units or args.flow_prediction):
        parser.error("--plan-units and --flow-prediction set up fresh weights; a checkpoint keeps its own")
    cfg.policy.plan_units = args.plan_units or cfg.policy.plan_units
    cfg.policy.flow_prediction = args.flow_prediction or cfg.policy.flow_prediction
    model = probe_network(args.policy, cfg)
    with open(args.data, "rb") as f:
        records = pickle.load(f)
    data = collate(records, [k for k in BATCH_KEYS if k in records[0].tensors])
    n = len(data["frames"])
    start = time.time()
    chunks = cached_prefixes(model, data, args.vision_only)
    print(f"cached {n} prefixes in {time.time() - start:.0f} s", flush=True)
    plans = data["target_actions"].float()
    split = int(n * 0.8)
    train = [c for c in chunks if c[1] <= split]
    held_out = [c for c in chunks if c[0] >= split]
    trained = [model.expert, model.action_in_proj, model.action_out_proj]
    model.requires_grad_(False)
    for module in trained:
        module.requires_grad_(True)
    optimiser = torch.optim.AdamW([p for m in trained for p in m.parameters()], lr=args.lr)
    units, k = model.plan_units, args.flow_samples
    rng = np.random.default_rng(0)
    start = time.time()
    for step in range(args.steps + 1):
        if step % 100 == 0:
            with torch.no_grad():
                predicted = torch.cat([summary(units.from_flow(plan_of(model, p, hi - lo, args.objective))) for lo, hi, p in held_out])
            wanted = summary(plans[held_out[0][0] : held_out[0][0] + len(predicted)])
            r2 = 1 - ((predicted - wanted) ** 2).mean(0) / wanted.var(0)
            print(f"step {step} ({time.time() - start:.0f} s): held-out R² next-second curvature {r2[0]:.2f}, "
                  f"curvature 3–4 s {r2[1]:.2f}, next-second acceleration {r2[2]:.2f}", flush=True)  # fmt: skip
        lo, hi, prefix = train[rng.integers(len(train))]
        rows = torch.from_numpy(rng.choice(hi - lo, min(args.batch, hi - lo), replace=False))
        if args.objective == "regression":
            planned = plan_of(model, rows_of(prefix, rows), len(rows), args.objective)
            loss = data_prediction_loss(planned, units.to_flow(plans[lo:hi][rows]))
        else:
            loss = flow_loss(model, plans[lo:hi][rows], rows_of(prefix, rows), k)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


if __name__ == "__main__":
    main()
