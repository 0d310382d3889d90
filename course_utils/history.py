"""What a training run leaves behind: ``History``, a table per epoch and its curves (lessons 4 to 7).

``training.fit`` returns a ``History``: one row per epoch (losses, metrics, time), the loss,
learning rate and momentum of every batch, the best epoch (lowest validation loss) and, if
asked, that epoch's weights. In a notebook it shows as a table that ``fit`` redraws after
every epoch (``LiveTable``); ``history.plot()`` draws the curves that reveal underfitting and
overfitting (lesson 6).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.env import in_jupyter_kernel


@dataclass
class History:
    """What happened during ``fit``.

    ``rows`` holds one dict per finished epoch: ``epoch``, ``train_loss`` (the mean loss of the
    epoch's batches, weighted by their size), ``valid_loss``, each metric, ``time`` in seconds.
    ``batch_losses``, ``batch_lrs`` and ``batch_moms`` hold one number per training batch (the
    rate and momentum of the last group, the head).
    ``best_epoch`` is the epoch with the lowest validation loss; with ``fit(keep_best=True)``,
    ``best_state`` is a copy of the model's ``state_dict`` from that epoch (on the CPU).
    In a notebook the history shows as a table; ``plot()`` draws its curves.
    """

    metric_names: list[str] = field(default_factory=list)
    rows: list[dict[str, float]] = field(default_factory=list)
    batch_losses: list[float] = field(default_factory=list)
    batch_lrs: list[float] = field(default_factory=list)
    batch_moms: list[float] = field(default_factory=list)
    steps_per_epoch: int = 0
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    interrupted: bool = False
    cuda_speedups: bool = False

    # --- recording (what fit and train_one_epoch call) ---

    def record_rate(self, optimizer: torch.optim.Optimizer) -> None:
        """Note the learning rate and momentum the next batch trains with (those of the head, the last group)."""
        group = optimizer.param_groups[-1]
        self.batch_lrs.append(group["lr"])
        self.batch_moms.append(group["betas"][0] if "betas" in group else group.get("momentum", math.nan))

    def add_batch_losses(self, losses: Sequence[float]) -> None:
        """Add finished batches' losses; a rate noted for a batch that never finished is dropped."""
        self.batch_losses += list(losses)
        del self.batch_lrs[len(self.batch_losses):]
        del self.batch_moms[len(self.batch_losses):]

    def add_epoch(self, row: dict[str, float], model: nn.Module, keep_best: bool) -> None:
        """Add one epoch's row; if its validation loss is the lowest so far, it becomes the best epoch.

        With ``keep_best``, a copy of the model's weights at the best epoch is kept (on the CPU).
        """
        self.rows.append(row)
        best = self.rows[self.best_epoch - 1]["valid_loss"] if self.best_epoch else math.inf
        if row.get("valid_loss", math.inf) < best:
            self.best_epoch = row["epoch"]
            if keep_best:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    # --- reading ---

    @property
    def columns(self) -> list[str]:
        return ["epoch", "train_loss", "valid_loss", *self.metric_names, "time"]

    def column(self, name: str) -> list[float]:
        """One column of the table, e.g. ``history.column("valid_loss")``."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}")
        return [row.get(name, math.nan) for row in self.rows]

    @staticmethod
    def _cell(name: str, value: float) -> str:
        if name == "epoch":
            return str(int(value))
        if name == "time":
            return f"{int(value) // 60:02d}:{int(value) % 60:02d}"
        return "-" if value is None or math.isnan(value) else f"{value:.4f}"

    def table(self) -> str:
        """The per-epoch table as plain text, one line per epoch."""
        widths = [max(len(c), 10) for c in self.columns]
        lines = ["  ".join(c.rjust(w) for c, w in zip(self.columns, widths))]
        for row in self.rows:
            lines.append("  ".join(self._cell(c, row.get(c, math.nan)).rjust(w) for c, w in zip(self.columns, widths)))
        if self.interrupted:
            lines.append("(interrupted)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:right'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:right'>{self._cell(c, row.get(c, math.nan))}</td>"
                             for c in self.columns) + "</tr>"
            for row in self.rows
        )
        note = "<caption style='caption-side:bottom'>interrupted</caption>" if self.interrupted else ""
        return f"<table>{note}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def plot(self, title: str | None = None) -> plt.Figure:
        """Training loss per batch with validation loss per epoch; and, with metrics, metrics per epoch."""
        ncols = 2 if self.metric_names else 1
        fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4), squeeze=False)
        ax = axes[0, 0]
        steps = np.arange(1, len(self.batch_losses) + 1)
        ax.plot(steps, self.batch_losses, color="tab:blue", alpha=0.3, lw=1, label="train (each batch)")
        window = max(1, self.steps_per_epoch // 2)
        if len(steps) >= window:  # each mean drawn at the middle of its batches
            middles = np.arange(len(steps) - window + 1) + 1 + (window - 1) / 2
            ax.plot(middles, running_mean(self.batch_losses, window), color="tab:blue", lw=2,
                    label=f"train (mean of {window} batch{'es' if window != 1 else ''})")
        if not all(math.isnan(v) for v in self.column("valid_loss")):
            ends = [row["epoch"] * self.steps_per_epoch for row in self.rows]
            ax.plot(ends, self.column("valid_loss"), "s-", color="tab:orange", label="validation (end of epoch)")
        ax.set_xlabel("training step (batch)")
        ax.set_ylabel("loss")
        ax.set_title("Loss")
        ax.grid(alpha=0.3)
        ax.legend()
        if self.metric_names:
            ax = axes[0, 1]
            epochs = self.column("epoch")
            for name in self.metric_names:
                ax.plot(epochs, self.column(name), "o-", label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel("value on the validation data")
            ax.set_title("Metrics")
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """The mean of each ``window`` consecutive values: a calmer curve that, drawn at the middle
    of each window, does not lag behind the data (a moving average that only looks back does)."""
    if not 1 <= window <= len(values):
        raise ValueError(f"window must be between 1 and the number of values ({len(values)}), got {window}")
    sums = np.cumsum(np.concatenate([[0.0], np.asarray(values, dtype=np.float64)]))
    return list((sums[window:] - sums[:-window]) / window)


class LiveTable:
    """Shows a ``History`` as it grows: redrawn in place in a notebook, one line per epoch in a terminal."""

    def __init__(self, history: History, quiet: bool = False):
        self.history, self.quiet, self.handle = history, quiet, None
        if quiet:
            return
        if in_jupyter_kernel():
            from IPython.display import display

            self.handle = display(history, display_id=True)
        else:
            tqdm.write(history.table())

    def new_row(self) -> None:
        """Show the row just added: redraw the table, or print the row's line."""
        if self.handle is not None:
            self.handle.update(self.history)
        elif not self.quiet:
            tqdm.write(self.history.table().splitlines()[-1])

    def redraw(self) -> None:
        """Redraw the table in a notebook (e.g. to show that training was interrupted)."""
        if self.handle is not None:
            self.handle.update(self.history)
