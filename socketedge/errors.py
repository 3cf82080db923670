"""Errors a user can cause. The CLI prints them as one line and exits with code 1; bugs keep their traceback."""

from __future__ import annotations


class SocketEdgeError(Exception):
    """Base class: a user mistake or an environment problem with a one-line explanation of what to do."""


class ConfigError(SocketEdgeError):
    """An option, a combination of options or a config value is invalid."""


class DataError(SocketEdgeError):
    """A data folder, image, session or recording is missing, empty, unreadable or inconsistent."""


class ModelError(SocketEdgeError):
    """A checkpoint, bundle or exported model is missing, malformed or does not match what it is used with."""


class UnknownNameError(ConfigError):
    """A registry lookup failed; the message lists the valid names and the closest match."""


class MissingExtraError(SocketEdgeError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, why: str = ""):
        self.module, self.extra = module, extra
        suffix = f" ({why})" if why else ""
        super().__init__(f"{module} is not installed{suffix}: run `pip install 'socketedge[{extra}]'`")


class DeviceError(SocketEdgeError):
    """A camera or accelerator is missing, busy or disappeared."""


class ParityError(SocketEdgeError):
    """An exported model does not agree with its PyTorch original within tolerance."""


def short(text: object, limit: int = 160) -> str:
    """The first line of a library's message, cut at a word boundary (with …) when longer than ``limit``:
    quoted inside our one-line errors without ending mid-word."""
    lines = str(text).strip().splitlines()
    line = " ".join(lines[0].split()) if lines else ""
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + " …"


def lazy_import(module: str, extra: str, why: str = ""):
    """Import an optional dependency, raising MissingExtraError naming the extra when it is absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # also covers a present package whose shared library is missing
        if getattr(e, "name", None) not in (None, module, module.split(".")[0]):
            why = why or f"{e}"
        raise MissingExtraError(module, extra, why) from e
