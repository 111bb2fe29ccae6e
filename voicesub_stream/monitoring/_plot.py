"""``voicesub report metrics.jsonl --plot out.png``: the sampler's JSONL drawn over time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ._sampler import Sample

__all__ = ("plot_samples",)


def plot_samples(samples: Sequence[Sample], path: Path) -> None:
    """CPU, RSS, event-loop lag and the slowest call per interval, one panel each (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    t0 = samples[0].time
    t = [(s.time - t0) / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    try:
        axes[0].plot(t, [s.process_cpu for s in samples], label="process (% of a core)")
        axes[0].plot(t, [s.system_cpu for s in samples], label="system (%)")
        axes[0].set_ylabel("CPU %")
        axes[0].legend(loc="upper right")
        axes[1].plot(t, [s.rss / 1e6 for s in samples])
        axes[1].set_ylabel("RSS MB")
        axes[2].plot(t, [s.loop_lag * 1000 for s in samples])
        axes[2].set_ylabel("loop lag ms")
        names = sorted({n for s in samples for n in s.slowest})
        for name in names:
            axes[3].plot(t, [s.slowest.get(name, float("nan")) for s in samples], ".",
                         label=name)
        axes[3].set_ylabel("slowest call s")
        if names:
            axes[3].legend(loc="upper right", fontsize="small")
        axes[3].set_xlabel("minutes")
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=80)
    finally:
        plt.close(fig)
