"""Record expert demonstrations for the offline probes: the generator `configs/teacher.yaml` trains on.

    python tools/probes/record.py runs/probe-data.pkl --sessions 8 --calls 24   # 192 records x 8 decisions

Records are kept in the order they were made, so the probes can hold out the end of the
recording: decisions 0.1 s apart are near-copies, and a random split would let a model
score by memorising its neighbours.
"""

from __future__ import annotations

import argparse
import pickle

from redux.actors.generators.demonstrations import record_demonstrations
from redux.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--config", default="configs/teacher.yaml")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--calls", type=int, default=24, help="generator calls of rollout_steps decisions per session")
    args = parser.parse_args()
    records = record_demonstrations(
        load_config(args.config), args.sessions, args.calls,
        on_call=lambda done, n: print(f"call {done}/{args.calls}: {n} records", flush=True),
    )  # fmt: skip
    with open(args.out, "wb") as f:
        pickle.dump(records, f)


if __name__ == "__main__":
    main()
