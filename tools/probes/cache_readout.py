"""Does the network's cache hold the next second's steering? A ridge read-out of frozen features.

    python tools/probes/cache_readout.py runs/probe-data.pkl --policy runs/teacher/checkpoints/step00000500
    python tools/probes/cache_readout.py runs/probe-data.pkl                     # fresh random weights

Features of each decision's prompt (no reasoning) from the frozen network: the vision
tower's output tokens, the language model's hidden states at the image positions (middle
and last layer) and at the prompt's last position. A ridge regression is fitted on the
first 80 % of the recording and scored on the last 20 % by the R² of the next second's
mean curvature (the best of a few ridge weights), with the curvature 3–4 s ahead and the
next second's acceleration at that weight.
"""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import torch

from redux.config import load_config
from redux.learner.batch import collate
from vision_readout import probe_network, summary  # the probes' network and three numbers of a plan

RIDGE = (1.0, 10.0, 100.0, 1_000.0, 10_000.0)


def features(model, frames: torch.Tensor, history: torch.Tensor) -> dict[str, torch.Tensor]:
    prompt = model.prompts.build(frames.numpy(), history.numpy())
    b, length = prompt.input_ids.shape
    vision = model.vlm.model.get_image_features(prompt.pixel_values, prompt.image_grid_thw, return_dict=True)
    attention = torch.ones(b, length, dtype=torch.long)
    positions, _ = model.rope_index(prompt.input_ids, prompt.image_mask.int(), prompt.image_grid_thw, attention)
    hidden = model.vlm.model(
        inputs_embeds=model.embed(prompt.input_ids), position_ids=positions, attention_mask=attention,
        pixel_values=prompt.pixel_values, image_grid_thw=prompt.image_grid_thw, output_hidden_states=True,
    ).hidden_states  # fmt: skip
    image = prompt.image_mask
    return {
        "vision tower output": torch.cat(list(vision.pooler_output), 0).reshape(b, -1),
        "language model, middle layer, image positions": hidden[len(hidden) // 2][image].reshape(b, -1),
        "language model, last layer, image positions": hidden[-1][image].reshape(b, -1),
        "last layer, prompt's last position": hidden[-1][:, -1],
    }


def ridge_r2(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[float, np.ndarray]:
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    best = None
    for weight in RIDGE:
        a = x[train]
        w = np.linalg.solve(a.T @ a + weight * np.eye(a.shape[1]), a.T @ (y[train] - y[train].mean(0)))
        predicted = x[test] @ w + y[train].mean(0)
        r2 = 1 - ((predicted - y[test]) ** 2).mean(0) / y[test].var(0)
        if best is None or r2[0] > best[1][0]:
            best = (weight, r2)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a recording made by record.py")
    parser.add_argument("--policy", help="a checkpoint of one of our runs; omitted: fresh weights")
    parser.add_argument("--config", default="configs/teacher.yaml")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    model = probe_network(args.policy, cfg)
    model.eval()
    with open(args.data, "rb") as f:
        data = collate(pickle.load(f), ["frames", "ego_history", "target_actions"])
    n = len(data["frames"])
    collected: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for i in range(0, n, 64):
            for name, value in features(model, data["frames"][i : i + 64], data["ego_history"][i : i + 64]).items():
                collected.setdefault(name, []).append(value)
    y = summary(data["target_actions"].float()).numpy()
    train, test = np.arange(int(n * 0.8)), np.arange(int(n * 0.8), n)
    for name, parts in collected.items():
        x = torch.cat(parts).double().numpy()
        weight, r2 = ridge_r2(x, y, train, test)
        print(f"{name} ({x.shape[1]} numbers, ridge {weight:g}): held-out R² next-second curvature {r2[0]:.2f}, "
              f"curvature 3–4 s {r2[1]:.2f}, next-second acceleration {r2[2]:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
