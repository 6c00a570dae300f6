"""Can a fresh vision tower learn the next second's steering from the BEV raster, and under which objective?

    python tools/probes/vision_readout.py runs/probe-data.pkl --readout linear --objective summary
    python tools/probes/vision_readout.py runs/probe-data.pkl --readout attention --objective flow

The `teacher` preset's vision tower (fresh) feeds a read-out, trained on the first 80 % of
a recording made by record.py and scored on the last 20 % by the R² of three numbers of
the plan: the next second's mean curvature, the mean curvature 3–4 s ahead, and the next
second's mean acceleration (normalised action units).

Read-outs: ``linear`` weighs every vision token at its position; ``attention`` has 4
learned queries attend over the tokens (what the flow expert does over the cache).
Objectives: ``summary`` regresses the three numbers, standardised; ``plan`` regresses the
whole 64 x 2 plan by squared error, ``plan-standardised`` with each of its 128 numbers
scaled to unit spread over the training decisions; ``flow`` trains an MLP velocity over the whole plan by
flow matching (the published time sampling) and scores greedy Euler plans from zero;
``flow-near`` is ``flow`` with the first 2 s weighted 10 x, ``flow-standardised`` is ``flow``
on the plan scaled as in ``plan-standardised``. docs/benchmarks.md ("Two
stages") has the figures.
"""

from __future__ import annotations

import argparse
import pickle
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from redux.config import load_config
from redux.learner.batch import collate
from redux.policy.alpamayo.factory import tokenizer_for, vocabulary_ids
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.presets import get_preset
from redux.policy.alpamayo.prompt import PromptBuilder
from redux.policy.flow_matching import euler_sample, flow_matching_loss, noisy_actions, sample_training_time
from redux.policy.text_tokenizer import token_ids

QUERIES = 4


def probe_network(policy: str | None, cfg):
    """The network of a checkpoint of one of our runs, or (None) fresh weights of ``cfg.policy``."""
    from redux.policy.loading import make_policy, with_policy_inputs
    from redux.policy.torch_engine import make_policy_replica

    if policy:
        return make_policy(policy, with_policy_inputs(cfg, policy)).model
    return make_policy_replica(cfg.policy, cfg.sim, seed=0).model


def summary(plans: torch.Tensor) -> torch.Tensor:
    """(B, 64, 2) normalised plans → (B, 3): next-second curvature, curvature 3–4 s ahead, next-second accel."""
    return torch.stack([plans[:, :10, 1].mean(1), plans[:, 30:40, 1].mean(1), plans[:, :10, 0].mean(1)], dim=1)


class AttentionReadout(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.queries = torch.nn.Parameter(torch.randn(QUERIES, width) / width**0.5)
        self.attention = torch.nn.MultiheadAttention(width, 4, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.attention(self.queries.expand(tokens.shape[0], -1, -1), tokens, tokens)[0].flatten(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a recording made by record.py")
    parser.add_argument("--readout", choices=("linear", "attention"), default="linear")
    parser.add_argument(
        "--objective",
        choices=("summary", "plan", "plan-standardised", "flow", "flow-near", "flow-standardised"),
        default="summary",
    )
    parser.add_argument("--patch", type=int, default=8, help="vision patch size in pixels (the preset's is 8)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--flow-samples", type=int, default=1, help="noise draws per decision in a flow objective")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    base = get_preset("teacher")
    preset = replace(base, vision=replace(base.vision, patch=args.patch))
    tokenizer = tokenizer_for(load_config("configs/teacher.yaml").policy)
    model = AlpamayoR1(preset, vocabulary_ids(tokenizer))
    prompts = PromptBuilder(preset, tokenizer, token_ids(tokenizer))
    with open(args.data, "rb") as f:
        data = collate(pickle.load(f), ["frames", "target_actions", "ego_history"])
    plans = data["target_actions"].float()
    targets = summary(plans)
    mean, std = targets.mean(0), targets.std(0)
    n = len(plans)
    train, held_out = np.arange(int(n * 0.8)), np.arange(int(n * 0.8), n)
    plan_mean, plan_std = plans[train].mean(0), plans[train].std(0).clamp(min=1e-3)
    standardised = args.objective.endswith("-standardised")
    if standardised:  # predicted in these units, scored back in plan units
        plans = (plans - plan_mean) / plan_std

    width = preset.hidden
    tokens = int(prompts.build(data["frames"][:1].numpy(), data["ego_history"][:1].numpy()).image_mask.sum())
    readout = AttentionReadout(width) if args.readout == "attention" else torch.nn.Flatten()
    context = QUERIES * width if args.readout == "attention" else tokens * width
    if args.objective == "summary":
        head = torch.nn.Linear(context, 3)
    else:  # a velocity over the whole plan, given the context, the noisy plan and the flow time
        head = torch.nn.Sequential(
            torch.nn.Linear(context + 128 + 16, 512), torch.nn.SiLU(), torch.nn.Linear(512, 512), torch.nn.SiLU(),
            torch.nn.Linear(512, 128),
        )  # fmt: skip
    freqs = torch.logspace(-1, 1, 8)
    params = [*model.vlm.model.visual.parameters(), *readout.parameters(), *head.parameters()]
    optimiser = torch.optim.AdamW(params, lr=args.lr)

    def features(rows) -> torch.Tensor:
        prompt = prompts.build(data["frames"][rows].numpy(), data["ego_history"][rows].numpy())
        vision = model.vlm.model.get_image_features(prompt.pixel_values, prompt.image_grid_thw, return_dict=True)
        return readout(torch.cat(list(vision.pooler_output), dim=0).reshape(len(rows), tokens, width))

    def velocity(ctx):
        def field(x, t):
            time_features = torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], dim=1)
            return head(torch.cat([ctx, x.flatten(1), time_features], dim=1)).reshape(-1, 64, 2)

        return field

    def predict(rows) -> torch.Tensor:
        ctx = features(rows)
        if args.objective == "summary":
            return head(ctx) * std + mean
        zeros = torch.zeros(len(rows), 64, 2)
        if args.objective == "plan":
            return summary(velocity(ctx)(zeros, torch.zeros(len(rows))))
        if args.objective == "plan-standardised":
            return summary(velocity(ctx)(zeros, torch.zeros(len(rows))) * plan_std + plan_mean)
        plan = euler_sample(velocity(ctx), zeros, 10)
        return summary(plan * plan_std + plan_mean if standardised else plan)

    def loss_of(rows) -> torch.Tensor:
        ctx, x = features(rows), plans[rows]
        if args.objective == "summary":
            return F.mse_loss(head(ctx), (targets[rows] - mean) / std)
        if args.objective in ("plan", "plan-standardised"):
            return F.mse_loss(velocity(ctx)(torch.zeros_like(x), torch.zeros(len(rows))), x)
        k = args.flow_samples
        ctx, x = ctx.repeat_interleave(k, 0), x.repeat_interleave(k, 0)
        noise, t = torch.randn_like(x), sample_training_time(len(x))
        predicted = velocity(ctx)(noisy_actions(x, noise, t), t)
        if args.objective in ("flow", "flow-standardised"):
            return flow_matching_loss(predicted, x, noise)
        weight = torch.ones(64, 1)
        weight[:20] = 10.0
        return (((predicted - (x - noise)) ** 2) * weight).mean() / weight.mean()

    start = time.time()
    print(f"{tokens} vision tokens per decision; {len(train)} decisions to train on, {len(held_out)} held out")
    for step in range(args.steps + 1):
        if step % 100 == 0:
            with torch.no_grad():
                predicted = torch.cat([predict(held_out[i : i + 64]) for i in range(0, len(held_out), 64)])
            r2 = 1 - ((predicted - targets[held_out]) ** 2).mean(0) / targets[held_out].var(0)
            print(f"step {step} ({time.time() - start:.0f} s): held-out R² next-second curvature {r2[0]:.2f}, "
                  f"curvature 3–4 s {r2[1]:.2f}, next-second acceleration {r2[2]:.2f}", flush=True)  # fmt: skip
        rows = np.random.default_rng(step).choice(train, args.batch, replace=False)
        loss = loss_of(rows)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


if __name__ == "__main__":
    main()
