"""The `socketedge` command line: one module per command, each exposing ``register(app)`` and ``ORDER``.

Commands only parse options, build a config and call one library function. SocketEdgeError becomes one line on
stderr and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from socketedge.errors import SocketEdgeError

app = typer.Typer(
    name="socketedge",
    help="Make RGB image classifiers work on depth, NIR or thermal cameras without the RGB training data (SOCKET), "
    "and ship them to the device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        from socketedge import __version__

        typer.echo(f"socketedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Make RGB image classifiers work on depth, NIR or thermal cameras without the RGB training data."""


def _register_commands() -> None:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "register"):
            modules.append(mod)
    for mod in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        mod.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    from socketedge.utils.progress import console

    try:
        app(args=argv, prog_name="socketedge")
    except SocketEdgeError as e:
        from rich.markup import escape

        # escaped: messages name extras like socketedge[gpu], which rich would read as markup and drop
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(1)
