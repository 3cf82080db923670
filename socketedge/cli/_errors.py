"""Which exceptions are a user's mistake, and the one line (plus an optional hint) that says so.

``user_error`` sorts what escaped a command: our own SocketEdgeError, a config model rejecting a value the user
typed (pydantic ValidationError, named by the option that carried it), a Typer/Click usage error (an unknown
option, a number out of range), a file-system error (disk full, permission denied, a missing path) and running
out of GPU memory. Everything else is a bug: ``None``, and the caller re-raises it with its traceback.
"""

from __future__ import annotations

import errno
from typing import Any

from socketedge.errors import SocketEdgeError

# OSErrors that describe the machine or the user's paths, not a bug in socketedge
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.EISDIR,
               errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY, errno.ENAMETOOLONG, errno.EFBIG, errno.EMFILE,
               errno.EIO, errno.ENODEV, errno.ENXIO, errno.EXDEV, errno.ELOOP}
MAX_ERRORS_SHOWN = 3


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _command_for(args: list[str], app) -> Any:
    """The click command ``args`` name (``socketedge import sunrgbd …`` → the sunrgbd command), or None."""
    try:
        import typer.main

        cmd = typer.main.get_command(app)
    except Exception:  # noqa: BLE001 - only used to name options nicely
        return None
    for token in args:
        commands = getattr(cmd, "commands", None)
        if commands is None:
            break
        if token in commands:
            cmd = commands[token]
    return cmd


def _option_name(field: str, command) -> str:
    """The command-line spelling of a config field: the option (or argument) of the same name, else --field."""
    params = {p.name: p for p in getattr(command, "params", [])}
    for name in (field, field.removesuffix("s"), field.removesuffix("_out")):
        param = params.get(name)
        if param is None:
            continue
        opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if getattr(param, "param_type_name", "") == "argument" or not opts:
            return name.upper()
        return max(opts, key=len)
    return "--" + field.replace("_", "-")


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return str(value)


def validation_message(error, args: list[str], app) -> str:
    """pydantic's errors as '--option VALUE: what is allowed' (up to three, joined)."""
    command = _command_for(args, app)
    parts = []
    errors = error.errors()
    for err in errors[:MAX_ERRORS_SHOWN]:
        loc = [str(x) for x in err.get("loc", ())]
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        params = {p.name for p in getattr(command, "params", [])}
        field = loc[0] if loc else ""
        if field and (error.title.endswith("Config") or field in params or field.removesuffix("s") in params):
            where = _option_name(field, command)
        else:  # a model that is not a command's config (a file's contents): say which model and field
            where = f"{error.title} {'.'.join(loc)}".strip()
        value = err.get("input")
        shown = "" if value is None or isinstance(value, dict) or err.get("type") == "missing" else f" {_shown(value)}"
        parts.append(f"{where}{shown}: {msg}")
    more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
    return one_line("; ".join(parts) + more)


def os_error_message(e: OSError) -> str:
    what = e.strerror or one_line(str(e)) or type(e).__name__
    names = " → ".join(str(n) for n in (e.filename, e.filename2) if n)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{what}{f': {names}' if names else ''} — free some space (nothing half-written was kept)"
    return f"{what}: {names}" if names else what


def user_error(e: BaseException, args: list[str], app) -> tuple[str, str | None] | None:
    """(message, hint) when ``e`` is a user's mistake or the environment's, else None (a bug)."""
    if isinstance(e, SocketEdgeError):
        return one_line(str(e)), None
    from pydantic import ValidationError
    import typer
    from typer import _click

    if isinstance(e, ValidationError):
        return validation_message(e, args, app), None
    if isinstance(e, _click.exceptions.UsageError):
        if type(e).__name__ == "NoArgsIsHelpError":  # the help is already printed
            raise SystemExit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        hint = f"run `{ctx.command_path} --help` for the options" if ctx is not None else None
        return one_line(e.format_message()), hint
    if isinstance(e, _click.exceptions.ClickException):
        return one_line(e.format_message()), None
    if isinstance(e, typer.Abort):
        return "aborted", None
    if isinstance(e, OSError) and (e.errno in USER_ERRNOS or (e.errno is None and e.filename)):
        return os_error_message(e), None
    if type(e).__name__ == "OutOfMemoryError" and type(e).__module__.startswith("torch"):
        return ("out of GPU memory", "use a smaller --batch-size, or --device cpu")
    return None
