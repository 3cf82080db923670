"""Importers for the public datasets the paper reports on: they read a release as downloaded and write the
layout described in :mod:`socketedge.data.importers.base` (source / target / TI folders + import.json).

    from socketedge.data.importers import import_dataset
    report = import_dataset("sunrgbd", "SUNRGBD", "data/sun", min_per_sensor=1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from socketedge.data.importers.base import IMPORT_MANIFEST, ImportPlan, ImportReport, read_import, write_plan
from socketedge.data.importers.diml import DimlOptions, plan_diml
from socketedge.data.importers.rgbnir import RgbNirOptions, plan_rgbnir
from socketedge.data.importers.sunrgbd import SunRgbdOptions, plan_sunrgbd
from socketedge.errors import ConfigError
from socketedge.registry import Registry


@dataclass(frozen=True)
class Importer:
    name: str
    description: str
    options: type[BaseModel]
    plan: Callable[[Path, BaseModel], ImportPlan]


IMPORTERS: Registry[Importer] = Registry("dataset importer")
IMPORTERS.register("sunrgbd", Importer("sunrgbd", "SUN RGB-D: RGB → depth, 4 sensors (paper Tables 3, 4)",
                                       SunRgbdOptions, plan_sunrgbd))
IMPORTERS.register("rgbnir", Importer("rgbnir", "EPFL RGB-NIR Scene: RGB → NIR (paper Table 6)",
                                      RgbNirOptions, plan_rgbnir))
IMPORTERS.register("diml", Importer("diml", "DIML/CVL RGB-D sample release, indoor: RGB → depth (paper Table 5)",
                                    DimlOptions, plan_diml))


def _options(name: str, options: dict) -> BaseModel:
    importer = IMPORTERS.get(name)
    try:
        return importer.options(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"{name} import option {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def plan_options(name: str, **options) -> dict:
    """The importer's options with defaults filled in, as import.json records them."""
    return _options(name, options).model_dump()


def plan_import(name: str, root: Path, **options) -> ImportPlan:
    return IMPORTERS.get(name).plan(Path(root), _options(name, options))


def import_dataset(name: str, root: Path, out: Path, overwrite: bool = False, workers: int | None = None,
                   show_progress: bool = True, **options) -> ImportReport:
    """Import the ``name`` release at ``root`` into ``out``; options are the importer's (see its Options model)."""
    plan = plan_import(name, root, **options)
    return write_plan(plan, Path(out), overwrite=overwrite, workers=workers, show_progress=show_progress)


__all__ = ["IMPORTERS", "IMPORT_MANIFEST", "ImportPlan", "ImportReport", "Importer", "import_dataset",
           "plan_import", "plan_options", "read_import"]
