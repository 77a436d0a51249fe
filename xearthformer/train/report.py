"""The markdown training report written to ``report.md`` of the model directory."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["curve_summary", "training_report"]


def curve_summary(history: list[list[float]], points: int = 10) -> list[list[float]]:
    """About ``points`` ``[step, mean loss]`` pairs: the loss averaged over equal spans."""
    if not history:
        return []
    arr = np.asarray(history, dtype=float)
    out = []
    for part in np.array_split(arr, min(points, len(arr))):
        out.append([int(part[-1, 0]), float(part[:, 1].mean())])
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def training_report(name: str, training: dict[str, Any]) -> str:
    """Markdown: settings, training curve summary, validation history, final scores against
    persistence."""
    lines = [f"# Training report: {name}", ""]
    lines += [f"- started from: {training['started_from']}",
              f"- steps: {training['steps_done']} of {training['steps']} "
              f"(batch size {training['batch_size']}, {training['epochs']:.3g} epochs over "
              f"{training['train']['windows']} training windows)",
              f"- optimizer: AdamW, lr {training['lr']:g}, weight decay "
              f"{training['weight_decay']:g}, warm-up {training['warmup_fraction']:g} then cosine, "
              f"gradient clipping {training['clip_grad_norm']}",
              f"- loss: {training.get('loss', 'mse')}; augmentation: "
              f"{training.get('augment') or 'none'}",
              f"- seed {training['seed']}, device {training['device']}, precision "
              f"{training['precision']}, processes {training['world_size']}",
              f"- time: {training['seconds']:.1f} s"]
    if training.get("stopped_early"):
        lines.append(f"- stopped early at step {training['steps_done']} (no improvement in "
                     f"{training['early_stopping_patience']} validations)")
    for note in training.get("notes", []):
        lines.append(f"- note: {note}")
    lines += ["", "## Training loss (model scale)", "", "| step | mean loss |", "|---|---|"]
    lines += [f"| {s} | {v:.5g} |" for s, v in training["loss_summary"]]
    valid = training.get("validation") or []
    if valid:
        monitor = training["monitor"]
        lines += ["", f"## Validation ({monitor}; best step {training['best_step']})", "",
                  "| step | " + " | ".join(valid[0]["model"]) + " |",
                  "|---|" + "---|" * len(valid[0]["model"])]
        for row in valid:
            lines.append(f"| {row['step']} | " + " | ".join(_fmt(v) for v in row["model"].values())
                         + " |")
        scores = training["scores"]
        lines += ["", "## Best model against persistence (validation data)", "",
                  "| score | model | persistence |", "|---|---|---|"]
        for key, value in scores["model"].items():
            lines.append(f"| {key} | {_fmt(value)} | {_fmt(scores['persistence'][key])} |")
    else:
        lines += ["", "No validation data were given: the final weights are kept."]
    return "\n".join(lines) + "\n"
