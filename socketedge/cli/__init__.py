"""The `socketedge` command line: one module per command, each exposing ``register(app)`` and ``ORDER``.

Commands only parse options, build a config and call one library function. ``main`` is the one error boundary
(see ``_errors.py``): a user mistake becomes one line on stderr and exit code 1; a bug keeps its traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

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
    """The entry point and the one error boundary: every user mistake ends as ``error: …`` (plus at most a hint
    line) and exit code 1 — SocketEdgeError, a config model rejecting an option value, a Typer/Click usage
    error, a file-system error (disk full, permission, missing path). Anything else is a bug and keeps its
    traceback. SOCKETEDGE_TRACEBACK=1 shows the traceback of user errors too."""
    from socketedge.cli._errors import user_error

    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        code = app(args=args, prog_name="socketedge", standalone_mode=False)
    except Exception as e:  # noqa: BLE001 - sorted below: user errors become one line, bugs re-raise
        message = user_error(e, args, app)
        if message is None or os.environ.get("SOCKETEDGE_TRACEBACK"):
            raise
        _fail(*message)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    from rich.markup import escape

    from socketedge.utils.progress import console

    # escaped: messages name extras like socketedge[gpu], which rich would read as markup and drop
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, markup=True)
    if hint:
        console.print(escape(hint), highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)
