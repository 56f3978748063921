"""Leaderboard plots: the overview ``leaderboard.png`` and one bar chart per suite table.

The suite charts exist because the overview's legend and bars become unreadable
beyond a handful of encoders and it shows no ranking.  A suite chart orders the
encoders by their suite average (the legend states it), draws the uncertainty the
record has (its 95 % bootstrap interval if present, else ± std over seeds, none
with one seed) and grows in width with encoders × tasks, its legend outside the axes.

Both plot scores ×100 on one axis, so a primary in the targets' units (a
regression task's MAE or RMSE, :data:`evalbench.metric_info.TARGET_UNITS`)
gets no bar (its tick says "not plotted"; the tables show it), and the axis
reaches below 0 when some score (R², Spearman) is negative.  A bar scored with
``run --skip-bad`` on fewer clips than its task holds carries ``‡`` above it, as
its table cell does (:func:`mark_excluded`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evalbench.metric_info import TARGET_UNITS

if TYPE_CHECKING:
    from evalbench.results.tables import Board


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def mark_excluded(ax, bars, excluded: pd.Series) -> None:
    """Put ``‡`` over each bar of ``bars`` whose record excluded clips (``excluded``: counts, one per bar)."""
    labels = ["‡" if pd.notna(n) and n > 0 else "" for n in excluded.tolist()]
    if any(labels):
        ax.bar_label(bars, labels=labels, fontsize=9, padding=2)


def render_plot(df: pd.DataFrame) -> bytes:
    """A grouped bar chart (one panel per protocol) as PNG bytes."""
    plt = _pyplot()
    from matplotlib.container import BarContainer

    protocols = sorted(df.protocol.unique())
    fig, axes = plt.subplots(len(protocols), 1, figsize=(9, 3.6 * len(protocols)), squeeze=False)
    for ax, protocol in zip(axes[:, 0], protocols, strict=True):
        sub = df[(df.protocol == protocol) & ~df.metric.isin(TARGET_UNITS)].dropna(subset=["mean"])
        if sub.empty:
            ax.set_title(f"protocol {protocol}: no score ×100 to plot")
            ax.set_axis_off()
            continue
        pivot = sub.pivot(index="task", columns="encoder", values="mean") * 100
        err = sub.pivot(index="task", columns="encoder", values="std") * 100
        pivot.plot.bar(ax=ax, yerr=err, capsize=2, rot=0, width=0.8)
        if "excluded" in sub:
            flags = sub.pivot(index="task", columns="encoder", values="excluded").reindex_like(pivot)
            bars = [c for c in ax.containers if isinstance(c, BarContainer)]  # one per encoder, in column order
            for enc, container in zip(pivot.columns, bars, strict=False):
                mark_excluded(ax, container, flags[enc])
        ax.set_ylabel("test score ×100 (primary metric)")
        ax.set_title(f"protocol {protocol}")
        ax.set_ylim(min(0.0, float(np.nanmin((pivot - err.fillna(0.0)).to_numpy()))), 100)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncols=min(4, len(pivot.columns)))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def whiskers(board: Board) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lower and upper whisker lengths (×100, encoders × columns): ci95 if present, else std with ≥ 2 seeds.

    A one-seed record without an interval gets no whisker (NaN) rather than a zero-length one, which would
    read as "no spread" like the "± 0.0" the table also avoids.
    """
    mean = board.pivot("mean")
    std = board.pivot("std").fillna(0.0).where(board.pivot("n_seeds") >= 2)
    low, high = board.pivot("ci95_low"), board.pivot("ci95_high")
    has_ci = low.notna() & high.notna()
    below = (mean - low).where(has_ci, std).clip(lower=0.0)  # NaN stays NaN
    above = (high - mean).where(has_ci, std).clip(lower=0.0)
    return 100 * below, 100 * above


def render_suite_plot(board: Board, subtitle: str = "") -> bytes:
    """One suite table as a bar chart (PNG bytes): tasks on x, one bar per encoder, best average first."""
    plt = _pyplot()
    units = set(board.rows.column[board.rows.metric.isin(TARGET_UNITS)])  # not on a ×100 axis
    mean = (100 * board.pivot("mean")).drop(columns=list(units)).reindex(columns=board.columns)
    below, above = whiskers(board)
    n_enc, n_tasks = len(board.order), len(board.columns)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + n_tasks * (0.3 * n_enc + 0.5)), 4.2))
    x = np.arange(n_tasks, dtype=float)
    width = 0.8 / max(1, n_enc)
    cmap = plt.get_cmap("tab10" if n_enc <= 10 else "tab20")
    for i, enc in enumerate(board.order):
        avg = board.average[enc] if board.average is not None else float("nan")
        label = f"{enc} ({'—' if pd.isna(avg) else f'{100 * avg:.1f}'})"
        bars = ax.bar(
            x - 0.4 + width * (i + 0.5),
            mean.loc[enc].to_numpy(dtype=float),
            width,
            yerr=np.vstack([below.loc[enc].to_numpy(dtype=float), above.loc[enc].to_numpy(dtype=float)]),
            capsize=2,
            color=cmap(i % cmap.N),
            error_kw={"elinewidth": 0.8},
            label=label,
        )
        if "excluded" in board.rows:
            mark_excluded(ax, bars, board.pivot("excluded").loc[enc].reindex(mean.columns))
    ticks = [c.replace("<br>", "\n") + ("\n(not plotted)" if c in units else "") for c in board.columns]
    ax.set_xticks(x, ticks)
    ax.set_ylabel("test score ×100 (primary metric)")
    lowest = np.nanmin((mean - below.fillna(0.0)).to_numpy(), initial=0.0)
    ax.set_ylim(min(0.0, float(lowest)), 100)
    ax.set_xlim(-0.5, n_tasks - 0.5)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"suite {board.title} — protocol {board.protocol}" + (f" ({subtitle})" if subtitle else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="encoder (suite average)")
    return _png(fig)
