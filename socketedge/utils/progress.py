"""Rich progress bars shared by every long-running command; loss terms appear live next to the bar."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class _Progress(Progress):
    """A transient bar leaves nothing behind, also when stderr is not a terminal (rich prints an empty line
    there), so a command that fails inside one still ends in exactly its one error line."""

    def stop(self) -> None:
        if self.live.transient:
            self.live.stop()
        else:
            super().stop()


def make_progress(transient: bool = False, disable: bool = False) -> Progress:
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[terms]}"),
        console=console,
        transient=transient,
        disable=disable,
    )


def format_terms(terms: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in terms.items())
