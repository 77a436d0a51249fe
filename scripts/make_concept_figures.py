"""Draw the figures of docs/concepts.md with the package's own code.

    MPLBACKEND=Agg python scripts/make_concept_figures.py [OUTPUT_DIR]   # default docs/images

* ``cuboid_patterns.png``: how named self-attention patterns cut a (T, H, W) grid into
  cuboids, one row per attention layer, computed with :mod:`xearthformer.nn.cuboid`
  (the same reordering the model uses) and :func:`xearthformer.nn.resolve_self_pattern`.
* ``global_vectors.png``: cuboids attend within themselves and to a few global vectors,
  which in turn attend to every token.
* ``earthformer_hierarchy.png``: the encoder-decoder hierarchy of the ICAR-ENSO
  Earthformer, with the tensor shape after each stage recorded by forward hooks on the
  real model (random weights).
* ``diffusion_schedule.png``: PreDiff's noise schedule (:class:`xearthformer.diffusion.NoiseSchedule`).

Deterministic, offline, a few seconds on a CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from xearthformer.nn import resolve_self_pattern  # noqa: E402
from xearthformer.nn.cuboid import adjust_cuboid_and_shift, cuboid_reorder  # noqa: E402

GRID = (4, 8, 8)  # (T, H, W) of the illustration
PATTERNS = ("axial", "video_swin_2x4", "axial_space_dilate_2")


def cuboid_ids(thw: tuple[int, int, int], cuboid: tuple, strategy: tuple, shift: tuple) -> np.ndarray:
    """Cuboid number of each (t, h, w) cell, by the model's own reordering.

    The model rolls the grid by ``-shift`` and then cuts it with :func:`cuboid_reorder`;
    here the cell numbers go through the same reordering, and the cuboid each lands in is
    mapped back to the unrolled grid.
    """
    cells = torch.arange(float(np.prod(thw))).reshape(1, *thw, 1)
    rolled = torch.roll(cells, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    groups = cuboid_reorder(rolled, tuple(cuboid), tuple(strategy))[0, :, :, 0]  # (cuboids, volume)
    ids = np.empty(int(np.prod(thw)), dtype=int)
    for k, members in enumerate(groups.long().numpy()):
        ids[members] = k
    return ids.reshape(thw)


def _palette(n: int) -> ListedColormap:
    base = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    rng = np.random.default_rng(0)
    colours = base[rng.permutation(20)] if n > 1 else base[:1]
    return ListedColormap(np.resize(colours, (max(n, 1), 4)))


def cuboid_figure(path: Path) -> None:
    rows = []
    for name in PATTERNS:
        sizes, strategies, shifts = resolve_self_pattern(name, (*GRID, 1))
        for layer, (size, strategy, shift) in enumerate(zip(sizes, strategies, shifts)):
            size, shift = adjust_cuboid_and_shift(GRID, tuple(size), tuple(shift), tuple(strategy))
            rows.append((name, layer, size, tuple(strategy), shift))
    T = GRID[0]
    fig, axes = plt.subplots(len(rows), T, figsize=(1.6 * T + 2.6, 1.45 * len(rows)), squeeze=False)
    for r, (name, layer, size, strategy, shift) in enumerate(rows):
        ids = cuboid_ids(GRID, size, strategy, shift)
        cmap = _palette(int(ids.max()) + 1)
        for t in range(T):
            ax = axes[r, t]
            ax.imshow(ids[t], cmap=cmap, vmin=-0.5, vmax=ids.max() + 0.5, interpolation="nearest")
            ax.set_xticks(np.arange(-0.5, GRID[2], 1), minor=True)
            ax.set_yticks(np.arange(-0.5, GRID[1], 1), minor=True)
            ax.grid(which="minor", color="white", linewidth=0.6)
            ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
            if r == 0:
                ax.set_title(f"t = {t}", fontsize=9)
        label = (f"{name}, layer {layer + 1}\ncuboid {size}\nstrategy {''.join(strategy)}"
                 + (f", shift {shift}" if any(shift) else ""))
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8, labelpad=8)
    fig.suptitle(f"Cuboid decomposition of a (T, H, W) = {GRID} grid: one colour per cuboid;\n"
                 "attention runs inside each cuboid ('l' local, 'd' dilated)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def global_vectors_figure(path: Path) -> None:
    ids = cuboid_ids((1, 8, 8), (1, 4, 4), ("l", "l", "l"), (0, 0, 0))[0]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.imshow(ids, cmap=_palette(4), extent=(0, 8, 0, 8), interpolation="nearest", alpha=0.85)
    for v in range(9):
        ax.axhline(v, color="white", lw=0.6)
        ax.axvline(v, color="white", lw=0.6)
    g_x, g_y = 11.5, np.array([6.0, 4.0, 2.0])
    centres = [(2, 6), (6, 6), (2, 2), (6, 2)]
    for gy in g_y:
        ax.add_patch(plt.Rectangle((g_x - 0.6, gy - 0.35), 1.2, 0.7, color="0.25"))
        for cx, cy in centres:
            ax.annotate("", xy=(cx, cy), xytext=(g_x - 0.6, gy),
                        arrowprops=dict(arrowstyle="<->", color="0.4", lw=0.7, alpha=0.7))
    ax.text(g_x, 7.2, "global vectors", ha="center", fontsize=9)
    ax.text(4, -0.8, "cuboids of local tokens (one colour each)", ha="center", fontsize=9)
    ax.set_xlim(-0.5, 13.5)
    ax.set_ylim(-1.3, 8.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Tokens attend inside their cuboid and to the global vectors;\n"
                 "the global vectors attend to all tokens, carrying information between cuboids",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hierarchy_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """(stage, output shape) of the ICAR-ENSO Earthformer's stages, from forward hooks."""
    from xearthformer.models import Earthformer
    from xearthformer.nn import (
        PatchMerging3D,
        StackCuboidCrossAttentionBlock,
        StackCuboidSelfAttentionBlock,
        Upsample3DLayer,
    )
    from xearthformer.zoo import official_kwargs

    torch.manual_seed(0)
    model = Earthformer.from_official_kwargs(official_kwargs("earthformer-icar-enso")).eval()
    kinds = {StackCuboidSelfAttentionBlock: "self-attention", StackCuboidCrossAttentionBlock: "cross-attention",
             PatchMerging3D: "downsample", Upsample3DLayer: "upsample"}
    stages: list[tuple[str, tuple[int, ...]]] = []

    def hook(module, _inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        stages.append((kinds[type(module)], tuple(out.shape[1:])))

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in kinds]
    x = torch.randn(1, *official_kwargs("earthformer-icar-enso")["input_shape"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    return [("input", tuple(x.shape[1:]))] + stages + [("output", tuple(y.shape[1:]))]


def hierarchy_figure(path: Path) -> None:
    stages = hierarchy_shapes()
    colours = {"input": "0.85", "output": "0.85", "self-attention": "#9ecae1", "cross-attention": "#fdae6b",
               "downsample": "#a1d99b", "upsample": "#c7b3e5"}
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(stages) + 1.0))
    for i, (kind, shape) in enumerate(stages):
        y = len(stages) - i
        ax.add_patch(plt.Rectangle((0, y - 0.4), 4.2, 0.8, color=colours.get(kind, "0.9")))
        ax.text(0.15, y, kind, va="center", fontsize=9)
        ax.text(4.4, y, " x ".join(map(str, shape)), va="center", fontsize=9, family="monospace")
        if i:
            ax.annotate("", xy=(2.1, y + 0.4), xytext=(2.1, y + 0.6), arrowprops=dict(arrowstyle="->", lw=0.8))
    ax.text(4.4, len(stages) + 0.9, "shape after the stage (T, H, W, C)", fontsize=9, style="italic")
    ax.set_xlim(-0.2, 8)
    ax.set_ylim(0.3, len(stages) + 1.3)
    ax.axis("off")
    ax.set_title("The ICAR-ENSO Earthformer (official configuration), stage by stage", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def schedule_figure(path: Path) -> None:
    from xearthformer.diffusion import NoiseSchedule

    schedule = NoiseSchedule()
    abar = schedule.alphas_cumprod.double().numpy()
    t = np.arange(1, abar.size + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(t, np.sqrt(abar), label=r"signal $\sqrt{\bar\alpha_t}$")
    ax.plot(t, np.sqrt(1 - abar), label=r"noise $\sqrt{1-\bar\alpha_t}$")
    ax.set_xlabel("diffusion step t")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False)
    ax.set_title("PreDiff's noise schedule: $z_t = \\sqrt{\\bar\\alpha_t} z_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    cuboid_figure(out / "cuboid_patterns.png")
    global_vectors_figure(out / "global_vectors.png")
    hierarchy_figure(out / "earthformer_hierarchy.png")
    schedule_figure(out / "diffusion_schedule.png")
    for name in ("cuboid_patterns", "global_vectors", "earthformer_hierarchy", "diffusion_schedule"):
        print(out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
