"""Published Alpamayo-R1 safetensors ↔ our ``AlpamayoR1``: names, shapes, loading and export.

Our module tree is laid out like the published checkpoint (nvidia/Alpamayo-R1-10B), so
its names are our ``state_dict`` names. Third-party exports from the Qwen2-VL era keep
the language model directly under ``vlm.model`` and the vision tower under ``vlm.visual``;
those names are read as aliases. The LCDrive modules and the plan units are ours: a
published checkpoint lacks them and they keep their initial values (for a real preset
the plan units are the identity, the published normalisation).

A load first checks every name, every shape and the action-space statistics against
the model, reading only the files' headers and four scalars, so a checkpoint that does
not fit raises before any weight changes; then it loads one shard at a time, so peak
memory is the model plus one shard.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from redux.policy.action_space import ACCEL_MEAN, ACCEL_STD, CURVATURE_MEAN, CURVATURE_STD
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.presets import ModelPreset

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
# ours, not published: the LCDrive modules and the expert's plan units
OUR_MODULES = ("latent_head.", "latent_in_proj.", "reasoning_probe.", "plan_units.")
TIED_HEAD = "vlm.lm_head.weight"
# (legacy prefix, current prefix): Qwen2-VL-era exports, before transformers nested the
# language model and the vision tower under ``model``
LEGACY_ALIASES = (
    ("vlm.model.layers.", "vlm.model.language_model.layers."),
    ("vlm.model.embed_tokens.", "vlm.model.language_model.embed_tokens."),
    ("vlm.model.norm.", "vlm.model.language_model.norm."),
    ("vlm.visual.", "vlm.model.visual."),
)
ACTION_STATS = {
    "action_space.accel_mean": ACCEL_MEAN,
    "action_space.accel_std": ACCEL_STD,
    "action_space.curvature_mean": CURVATURE_MEAN,
    "action_space.curvature_std": CURVATURE_STD,
}
STATS_RTOL = 1e-4
_SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
_LISTED = 12  # names shown per kind of problem; a wrong checkpoint can have thousands


def our_key(published: str) -> str:
    """Our ``state_dict`` name for a published tensor name (current layout or a legacy alias)."""
    for legacy, current in LEGACY_ALIASES:
        if published.startswith(legacy):
            return current + published[len(legacy) :]
    return published


def published_key(ours: str) -> str:
    """The name the published layout gives one of our tensors: the same, since our modules
    were named after it (kept as a function so that exports go through one place)."""
    return ours


def map_published_keys(names) -> dict[str, str]:
    """Published name → ours; ValueError if two names (an alias and its current form) collide."""
    mapping, seen = {}, {}
    for name in names:
        ours = our_key(name)
        if ours in seen:
            raise ValueError(f"checkpoint holds both {seen[ours]!r} and {name!r}, which name the same tensor {ours!r}")
        seen[ours] = name
        mapping[name] = ours
    return mapping


def _tied(model: AlpamayoR1) -> bool:
    return model.vlm.lm_head.weight is model.vlm.get_input_embeddings().weight


def expected_published_shapes(preset: ModelPreset | str) -> dict[str, tuple[int, ...]]:
    """Every tensor a published checkpoint of ``preset`` holds, with its shape.

    Derived from our model built on the meta device (no memory), so it is what the
    loader will demand; the LCDrive modules and a tied lm_head are not part of it.
    """
    from redux.policy.alpamayo.info import meta_model

    model = meta_model(preset)
    tied = _tied(model)
    return {
        published_key(name): tuple(tensor.shape)
        for name, tensor in model.state_dict().items()
        if not name.startswith(OUR_MODULES) and not (tied and name == TIED_HEAD)
    }


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    file: Path
    shape: tuple[int, ...]
    dtype: str


def _shards(path: Path) -> tuple[list[Path], dict[str, str] | None]:
    """The safetensors files of a checkpoint, and its index's name → file map if it has one."""
    if path.is_file():
        index = path if path.suffix == ".json" else None
        if index is None:
            return [path], None
    elif (path / INDEX).exists():
        index = path / INDEX
    elif (path / SINGLE).exists():
        return [path / SINGLE], None
    else:
        raise FileNotFoundError(f"{path} holds neither {INDEX} nor {SINGLE}")
    weight_map = json.loads(index.read_text())["weight_map"]
    return [index.parent / f for f in sorted(set(weight_map.values()))], weight_map


def _scan(path: Path) -> dict[str, _Entry]:
    """Published name → where it lies, its shape and dtype, from the headers alone."""
    files, weight_map = _shards(path)
    entries = {}
    for file in files:
        with safe_open(file, framework="pt") as shard:
            names = list(shard.keys())
            if weight_map is not None and sorted(names) != sorted(k for k, f in weight_map.items() if f == file.name):
                raise ValueError(f"{path} names other tensors for {file.name} than the shard holds")
            for name in names:
                if name in entries:
                    raise ValueError(f"{name!r} is stored in both {entries[name].file.name} and {file.name}")
                piece = shard.get_slice(name)
                entries[name] = _Entry(file, tuple(piece.get_shape()), piece.get_dtype())
    return entries


# --- loading ----------------------------------------------------------------------------------


@dataclass
class LoadReport:
    path: Path
    loaded: list[str]  # our names, filled from the checkpoint
    initialised: list[str]  # ours that no published tensor fills (OUR_MODULES): kept as initialised
    renamed: dict[str, str] = field(default_factory=dict)  # legacy published name → ours
    ignored: list[str] = field(default_factory=list)  # published tensors with no weight of their own (a tied head)
    shards: int = 1


def _listing(title: str, items: list[str]) -> str:
    shown = "\n".join(f"  {item}" for item in items[:_LISTED])
    more = f"\n  … and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return f"{title} ({len(items)}):\n{shown}{more}"


def _stats_problems(stats: dict[str, tuple[str, _Entry]]) -> list[str]:
    """The stored action-space statistics must be the ones our normalisation uses."""
    problems = []
    for ours, (published, entry) in stats.items():
        with safe_open(entry.file, framework="pt") as shard:
            stored = shard.get_tensor(published)
        expected = ACTION_STATS[ours]
        # a bf16 checkpoint rounds them by up to half its epsilon; that is agreement
        rtol = max(STATS_RTOL, torch.finfo(stored.dtype).eps) if stored.is_floating_point() else STATS_RTOL
        if stored.numel() != 1 or not math.isclose(float(stored), expected, rel_tol=rtol, abs_tol=0.0):
            problems.append(f"{published} = {stored.flatten().tolist()} but redux.policy.action_space uses {expected}")
    return problems


def _plan(model: AlpamayoR1, entries: dict[str, _Entry], path: Path) -> tuple[dict[str, str], LoadReport]:
    """Which published tensor fills which of ours; ValueError listing everything that does not fit."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tied = _tied(model)
    mapping = map_published_keys(entries)
    # a tied head is the embedding: a copy stored anyway has nothing of its own to fill
    ignored = sorted(p for p, ours in mapping.items() if tied and ours == TIED_HEAD)
    placed = {p: ours for p, ours in mapping.items() if p not in ignored}
    unexpected = sorted(p for p, ours in placed.items() if ours not in expected)
    mismatched = sorted(
        f"{p}: checkpoint {entries[p].shape}, model {expected[ours]}"
        for p, ours in placed.items()
        if ours in expected and entries[p].shape != expected[ours]
    )
    filled = set(placed.values())
    absent = [n for n in expected if n not in filled and not (tied and n == TIED_HEAD)]
    missing = [n for n in absent if not n.startswith(OUR_MODULES)]
    stats = {ours: (p, entries[p]) for p, ours in placed.items() if ours in ACTION_STATS}
    problems = []
    if missing:
        problems.append(_listing("missing (model tensors the checkpoint lacks)", missing))
    if unexpected:
        problems.append(_listing("unexpected (checkpoint tensors with no place in the model)", unexpected))
    if mismatched:
        problems.append(_listing("shape mismatches", mismatched))
    stat_problems = _stats_problems(stats)
    if stat_problems:
        problems.append(_listing("action-space statistics that differ from ours", stat_problems))
    if problems:
        raise ValueError(
            f"checkpoint {path} does not fit the {model.preset.name} model; nothing was loaded.\n" + "\n".join(problems)
        )
    report = LoadReport(
        path=path,
        loaded=sorted(filled),
        initialised=[n for n in absent if n.startswith(OUR_MODULES)],
        renamed={p: ours for p, ours in placed.items() if p != ours},
        ignored=ignored,
        shards=len({e.file for e in entries.values()}),
    )
    return placed, report


def _materialise_rest(model: AlpamayoR1, dtype: torch.dtype) -> None:
    """After loading into a meta model: give storage to what no checkpoint tensor filled.

    Our modules get fresh initial values; the rotary frequency buffers, which
    transformers keeps out of every state dict, are recomputed by rebuilding their
    module from its config.
    """
    for prefix in OUR_MODULES:
        module = model.get_submodule(prefix.rstrip("."))
        if any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
            module.to_empty(device="cpu")
            for sub in module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
            module.to(dtype)
    for name, module in model.named_modules():
        stale = [b for b, t in module.named_buffers(recurse=False) if t.is_meta]
        if not stale:
            continue
        if not hasattr(module, "config"):
            raise RuntimeError(f"{name} ({type(module).__name__}) has buffers {stale} no checkpoint fills")
        with torch.device("cpu"):
            fresh = type(module)(module.config)
        for b in stale:
            module.register_buffer(b, fresh.get_buffer(b), persistent=b not in module._non_persistent_buffers_set)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"still on the meta device after loading: {left[:_LISTED]}")


def load_published_checkpoint(model: AlpamayoR1, path: str | Path, dtype: torch.dtype | None = None) -> LoadReport:
    """Fill ``model`` from a published safetensors checkpoint (directory, index file or single file).

    ``dtype``: what floating weights are held in afterwards; None keeps the model's own,
    or, for a model built on the meta device, the checkpoint's. A meta model comes out
    entirely materialised on the CPU. ValueError, with the model untouched, if any name,
    shape or action-space statistic does not fit.
    """
    path = Path(path)
    entries = _scan(path)
    placed, report = _plan(model, entries, path)
    tied = _tied(model)
    on_meta = any(p.is_meta for p in model.parameters())
    if dtype is not None and not on_meta:
        model.to(dtype)
    by_file: dict[Path, list[str]] = {}
    for published in placed:
        by_file.setdefault(entries[published].file, []).append(published)
    for file, names in sorted(by_file.items()):
        with safe_open(file, framework="pt") as shard:
            chunk = {placed[n]: shard.get_tensor(n) for n in names}
        if dtype is not None:
            chunk = {k: t.to(dtype) if t.is_floating_point() else t for k, t in chunk.items()}
        # assign: a meta model takes the tensors themselves (copying into meta storage is a no-op)
        model.load_state_dict(chunk, strict=False, assign=on_meta)
    if on_meta:
        if tied:  # assign replaced the embedding parameter; the head must follow it
            model.vlm.lm_head.weight = model.vlm.get_input_embeddings().weight
        _materialise_rest(model, dtype or model.vlm.get_input_embeddings().weight.dtype)
    return report


# --- export -----------------------------------------------------------------------------------


def save_published_checkpoint(
    model: AlpamayoR1, path: str | Path, shard_bytes: int = 5 * 2**30, lcdrive: bool = True
) -> Path:
    """Write ``model`` in the published layout: ``model.safetensors`` if it fits one shard,
    else ``model-0000i-of-0000n.safetensors`` shards plus ``model.safetensors.index.json``.

    ``lcdrive=False`` leaves out our own modules (OUR_MODULES), giving exactly the published tensor
    set. A tied lm_head is not written (it is the embedding). Earlier exports in ``path``
    are replaced. Returns the index (or single file) written.
    """
    path = Path(path)
    tied = _tied(model)
    tensors = {
        published_key(name): t
        for name, t in model.state_dict().items()
        if not (tied and name == TIED_HEAD) and (lcdrive or not name.startswith(OUR_MODULES))
    }
    on_meta = [n for n, t in tensors.items() if t.is_meta]
    if on_meta:
        raise ValueError(f"cannot export a model with weights on the meta device: {on_meta[:_LISTED]}")
    shards: list[list[str]] = [[]]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    path.mkdir(parents=True, exist_ok=True)
    for stale in [path / INDEX, path / SINGLE, *(p for p in path.iterdir() if _SHARD_NAME.fullmatch(p.name))]:
        stale.unlink(missing_ok=True)
    n = len(shards)
    names = [SINGLE] if n == 1 else [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    for file, keys in zip(names, shards):
        save_file({k: tensors[k].detach().to("cpu").contiguous() for k in keys}, path / file, metadata={"format": "pt"})
    if len(shards) == 1:
        return path / SINGLE
    index = {
        "metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
        "weight_map": {k: file for file, keys in zip(names, shards) for k in sorted(keys)},
    }
    (path / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True))
    return path / INDEX
