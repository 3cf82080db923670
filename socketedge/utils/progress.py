"""Rich progress bars shared by every long-running command; loss terms appear live next to the bar."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)


class _Progress(Progress):
    """A transient bar leaves nothing behind, also when stderr is not a terminal (rich prints an empty line
    there), so a command that fails inside one still ends in exactly its one error line."""

    def stop(self) -> None:
        if self.live.transient:
            self.live.stop()
        else:
            super().stop()


class RateColumn(ProgressColumn):
    """Items per second, e.g. "850 frames/s" (rich's own speed column counts bytes)."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task):
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


def make_progress(transient: bool = False, disable: bool = False, rate_unit: str | None = None) -> Progress:
    """``rate_unit``: also show the rate, e.g. "frames" → "850 frames/s"."""
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *([RateColumn(rate_unit)] if rate_unit else []),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[terms]}"),
        console=console,
        transient=transient,
        disable=disable,
    )


def format_terms(terms: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in terms.items())
