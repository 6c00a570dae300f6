"""One DeepSpeed engine around the policy network: step, checkpoint, export weights.

fp32 throughout: this runs on CPU here and the tiny models gain nothing from mixed
precision; the GPU cluster config can add it later. The engine is driven with
batches we build ourselves, so DeepSpeed's data loader and its notion of a batch
size are only bookkeeping (``train_batch_size`` counts records per step).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import deepspeed
import torch
import torch.distributed
from torch import nn

from redux.config import LearnerConfig
from redux.learner.jit_build_locks import settle_build_locks
from redux.learner.objectives import Loss

# DeepSpeed's own progress line every N steps duplicates our telemetry; push it out of sight.
_DEEPSPEED_PRINT_EVERY = 1_000_000
# Our client state travels under one key so that load() can return exactly what
# save() was given, without DeepSpeed's own entries (ds_config, param_shapes, ...).
_CLIENT_STATE_KEY = "redux"


class DeepSpeedTrainer:
    def __init__(self, model: nn.Module, cfg: LearnerConfig):
        _init_single_process_world()
        settle_build_locks(cfg.jit_lock_stale_s)
        config = {
            "train_batch_size": cfg.rollouts_per_step,
            "gradient_clipping": cfg.grad_clip,
            "steps_per_print": _DEEPSPEED_PRINT_EVERY,
            "zero_optimization": {"stage": cfg.zero_stage},
            "optimizer": {
                "type": "AdamW",
                # torch_adam: DeepSpeed's own CPU Adam is a C++ extension JIT-compiled on
                # first use (minutes on a small machine); torch's AdamW needs no build.
                "params": {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "torch_adam": True},
            },
        }
        if cfg.lr_schedule == "cosine":
            # DeepSpeed's scheduler, so that checkpoints carry its position and a resume continues it
            config["scheduler"] = {
                "type": "WarmupCosineLR",
                "params": {
                    "total_num_steps": cfg.steps,
                    "warmup_num_steps": max(1, cfg.warmup_steps),
                    "warmup_min_ratio": 0.0,
                    "warmup_type": "linear",
                    "cos_min_ratio": cfg.min_lr_ratio,
                },
            }
        self.keep_checkpoints = cfg.keep_checkpoints
        trained = freeze_all_but(model, cfg.train_only)
        self.engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=trained, config=config)

    @property
    def module(self) -> nn.Module:
        return self.engine.module

    def step(self, batch: dict[str, torch.Tensor], objective: Loss) -> dict[str, float]:
        self.engine.train()
        loss, metrics = objective(self.engine, batch)
        self.engine.backward(loss)
        # ZeRO stages 1-3 keep the pre-clipping gradient norm; stage 0 clips through torch
        # and discards it, and the gradients are zeroed by step(), so measure it now.
        stage0_norm = self._grad_norm() if self.engine.zero_optimization_stage() == 0 else None
        self.engine.step()
        grad_norm = stage0_norm if stage0_norm is not None else self.engine.get_global_grad_norm()
        if grad_norm is not None:
            metrics["grad_norm"] = float(grad_norm)
        metrics["lr"] = float(self.engine.get_lr()[0])
        return metrics

    def save(self, directory: Path, client_state: dict[str, Any]) -> Path:
        """A checkpoint tagged by optimiser step; DeepSpeed's ``latest`` file points at it."""
        tag = f"step{self.engine.global_steps:08d}"
        self.engine.save_checkpoint(str(directory), tag=tag, client_state={_CLIENT_STATE_KEY: client_state})
        for old in sorted(Path(directory).glob("step*"))[: -self.keep_checkpoints]:
            shutil.rmtree(old)
        return Path(directory) / tag

    def load(self, directory: Path) -> dict[str, Any]:
        """Restore weights and optimiser state from the latest checkpoint in ``directory``."""
        path, state = self.engine.load_checkpoint(str(directory))
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {directory} (no 'latest' tag file)")
        return state[_CLIENT_STATE_KEY]

    def named_weights(self) -> dict[str, torch.Tensor]:
        """The unwrapped module's state_dict as CPU copies a replica can load strictly."""
        # ZeRO-3 partitions parameters; gathering is a no-op for the other stages.
        with deepspeed.zero.GatheredParameters(list(self.module.parameters())):
            return {
                name: value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
                for name, value in self.module.state_dict().items()
            }

    def _grad_norm(self) -> float:
        grads = [p.grad for p in self.module.parameters() if p.grad is not None]
        return torch.nn.utils.get_total_norm(grads).item() if grads else 0.0


def freeze_all_but(model: nn.Module, modules: list[str]) -> list[nn.Parameter]:
    """The parameters of the named top-level modules (all when none are named); the rest stop
    requiring gradients, so the forward pass through them builds no graph."""
    if not modules:
        return list(model.parameters())
    children = {name for name, _ in model.named_children()}
    unknown = sorted(set(modules) - children)
    if unknown:
        raise ValueError(
            f"learner.train_only names {unknown}, which the network lacks; its modules: {sorted(children)}"
        )
    trained = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".", 1)[0] in modules)
        if parameter.requires_grad:
            trained.append(parameter)
    return trained


def _init_single_process_world() -> None:
    """A one-process torch.distributed world on a free port, unless one exists.

    DeepSpeed needs torch.distributed even for one process. When a launcher has set
    RANK it owns the world; otherwise pick a free port, because several learners may
    start at once on one machine (parallel test processes) and a fixed port collides.
    """
    if torch.distributed.is_initialized() or "RANK" in os.environ:
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
