"""A vLLM engine over a policy's language model, in this process: decode, and take weight pushes.

The engine core runs in the calling process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so
a replica's generate calls and weight pushes are serialised by its own thread, pushes
hand vLLM views of the torch replica's tensors (no copy, no pickling), and a replica is
one process that Ray can restart. Log-probabilities are vLLM's ``processed_logprobs``:
the distribution a token was drawn from (see ``reasoning.sampling_log_probs``).
With ``policy.vllm.weight_transfer`` nccl or ipc the engine instead receives the
language model from the learner through vLLM's weight-transfer engine
(``gpu_weight_transfer``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from redux.config import VllmConfig
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.reasoning import Sampling
from redux.policy.vllm.served_model import write_served_model

WORKER_EXTENSION = "redux.policy.vllm.weight_sync.WeightSyncExtension"


@dataclass
class Decoded:
    """One sample: the generated ids (the stop token included when it was generated) and their log-probs."""

    token_ids: list[int]
    log_probs: list[float]


class ServedLanguageModel:
    def __init__(self, model: AlpamayoR1, cfg: VllmConfig, max_model_len: int, seed: int, version: int = 0):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM

        from redux.policy.vllm.gpu_weight_transfer import engine_kwargs

        transfer = engine_kwargs(cfg)  # first: nccl/ipc without CUDA fail here, before any export
        self.torn = False  # a GPU weight transfer failed part-way (gpu_weight_transfer.ReplicaWeightReceiver)
        self.workdir = tempfile.TemporaryDirectory(prefix="redux-vllm-")
        path = self._export(model, Path(self.workdir.name) / "model", max_model_len)
        self.llm = LLM(
            model=str(path),
            **self._model_kwargs(model),
            dtype=cfg.dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            kv_cache_memory_bytes=None if cfg.kv_cache_mib is None else cfg.kv_cache_mib * 2**20,
            enforce_eager=cfg.enforce_eager,
            seed=seed,
            logprobs_mode="processed_logprobs",
            worker_extension_cls=WORKER_EXTENSION,
            **transfer,
        )
        self._rpc("start_at_version", version)

    # what a sibling engine (native_vl.NativeVisionLanguageModel) serves differently

    def _export(self, model: AlpamayoR1, directory: Path, max_model_len: int) -> Path:
        return write_served_model(model, directory, max_model_len)

    def _model_kwargs(self, model: AlpamayoR1) -> dict:
        return {"skip_tokenizer_init": True, "enable_prompt_embeds": True}

    def _request(self, prompt: torch.Tensor) -> dict:
        return {"prompt_embeds": prompt.detach().float().contiguous()}

    def _rpc(self, method: str, *args):
        results = self.llm.collective_rpc(method, args=args)
        return results[0]

    def generate(
        self,
        prompts: list,
        num_samples: int,
        sampling: Sampling,
        allowed_token_ids: list[int],
        stop_token_id: int,
        max_tokens: int,
        seeds: list[int],
    ) -> list[list[Decoded]]:
        """``num_samples`` continuations of each prompt: (L, hidden) embeddings here, a
        ``native_vl.NativePrompt`` for the native engine."""
        from vllm import SamplingParams

        if self.torn:
            raise RuntimeError("a weight transfer failed part-way: this engine holds two versions until one completes")
        requests = [self._request(p) for p in prompts]
        # greedy samples are all the same continuation: decode it once
        n = 1 if sampling.greedy else num_samples
        params = [
            SamplingParams(
                n=n,
                temperature=0.0 if sampling.greedy else sampling.temperature,
                top_p=1.0 if sampling.greedy else sampling.top_p,
                max_tokens=max_tokens,
                stop_token_ids=[stop_token_id],
                allowed_token_ids=allowed_token_ids,
                logprobs=0,
                seed=seed,
                detokenize=False,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        decoded = [
            [
                Decoded(list(o.token_ids), [step[token].logprob for step, token in zip(o.logprobs, o.token_ids)])
                for o in sorted(out.outputs, key=lambda o: o.index)
            ]
            for out in outputs
        ]
        return [samples * (num_samples // n) for samples in decoded]

    def load_weights(self, named: dict[str, torch.Tensor], version: int, bucket_tensors: int) -> int:
        """Push the language model's share of ``named`` in buckets; returns the version now served."""
        items = list(named.items())
        buckets = (dict(items[i : i + bucket_tensors]) for i in range(0, len(items), bucket_tensors))
        served = self._rpc("load_served_weights", buckets, version)
        self._forget_cached_prompts()
        return served

    def _forget_cached_prompts(self) -> None:
        """Cached prefix blocks hold the keys and values of the weights that computed them; a
        prompt that repeats after a push (the system turn, or unchanged embeddings) must not
        reuse them."""
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM kept its prefix cache after a weight push (requests still running)")

    def served_version(self) -> int:
        return self._rpc("weight_version")

    # policy.vllm.weight_transfer=nccl/ipc: vLLM's weight-transfer engine, driven by the learner
    # (gpu_weight_transfer). The caller keeps decoding out from start_transfer to finish_transfer.

    def init_transfer(self, init_info: dict) -> None:
        from vllm.distributed.weight_transfer.base import WeightTransferInitRequest

        self.llm.init_weight_transfer_engine(WeightTransferInitRequest(init_info=init_info))

    def start_transfer(self) -> None:
        self.llm.start_weight_update()

    def receive(self, update_info: dict) -> None:
        from vllm.distributed.weight_transfer.base import WeightTransferUpdateRequest

        self.llm.update_weights(WeightTransferUpdateRequest(update_info=update_info))

    def finish_transfer(self, version: int) -> int:
        """Complete the reload, then record ``version``; returns the version now served."""
        self.llm.finish_weight_update(weight_version=str(version))
        served = self._rpc("record_version", version)
        self._forget_cached_prompts()
        return served

    def close(self) -> None:
        """Drop the engine and its exported model (idempotent)."""
        self.__dict__.pop("llm", None)
        self.workdir.cleanup()
