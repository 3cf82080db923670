"""On-disk data layouts and their readers.

- labeled folder:   ROOT/<class>/<name>.<ext>
- paired folder:    ROOT/<modality>/[<class>/]<stem>.<ext>   (equal class + stem pair images across modalities)
- target folder:    ROOT/<name>.<ext> or ROOT/<class>/<name>.<ext> (labels optional); a paired-folder root works
                    too, its <modality>/ subfolder is used (the one that is not the source models' modality).
A folder named after its modality (depth/, nir/, thermal/, rgb/) says its modality; elsewhere it must be stated.
Capture sessions (a directory with a session manifest) are read through the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from socketedge.data.imageio import MODALITIES, is_image
from socketedge.data.session import Session, SessionFrame, is_session, load_session
from socketedge.errors import ConfigError, DataError


@dataclass(frozen=True)
class ImageItem:
    path: Path
    key: str  # "<class>/<stem>" or "<stem>": what pairs images across modalities
    label: int | None = None


@dataclass
class ImageSet:
    root: Path
    modality: str
    items: list[ImageItem]
    class_names: list[str] | None  # None when unlabeled

    @property
    def labeled(self) -> bool:
        return self.class_names is not None

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices) -> "ImageSet":
        """The items at ``indices`` (any iterable of ints, e.g. a tensor of a split), same classes."""
        return ImageSet(self.root, self.modality, [self.items[int(i)] for i in indices], self.class_names)


@dataclass
class PairedSet:
    root: Path
    modalities: tuple[str, str]
    a: ImageSet  # e.g. rgb, item i pairs with b.items[i] (same key)
    b: ImageSet  # e.g. depth

    def __len__(self) -> int:
        return len(self.a.items)


def require_dir(root: Path, what: str) -> Path:
    root = Path(root)
    if not root.exists():
        raise DataError(f"{what} {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{what} {root} is not a directory")
    return root


def _subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def class_index(found: list[str], class_names: list[str] | None, where: str) -> tuple[list[str], dict[str, int]]:
    """The class list labels index into: the model's (every found class must be one of them) or the found ones."""
    names = sorted(found)
    if class_names is not None:
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise DataError(f"{where} has classes {unknown} that the model does not know; "
                            f"model classes: {', '.join(class_names)}")
        names = list(class_names)
    return names, {n: i for i, n in enumerate(names)}


def _scan(root: Path, modality: str, labels: str, what: str,
          class_names: list[str] | None = None) -> ImageSet:
    """labels: 'required' (class folders), 'optional' (class folders or flat)."""
    flat = _images(root)
    classes = [d for d in _subdirs(root) if d.name not in MODALITIES or labels == "required"]
    if labels == "optional" and flat and not classes:
        return ImageSet(root, modality, [ImageItem(p, p.stem) for p in flat], None)
    if not classes:
        hint = "class folders ROOT/<class>/*.png" if labels == "required" else "images or class folders"
        raise DataError(f"{what} {root} is empty; expected {hint}")
    if flat and labels == "required":
        raise DataError(f"{what} {root} mixes images ({flat[0].name}) with class folders; move them into a class")
    names, index = class_index([d.name for d in classes], class_names, f"{what} {root}")
    items = []
    for d in classes:
        imgs = _images(d)
        if not imgs:
            raise DataError(f"class folder {d} has no images")
        items += [ImageItem(p, f"{d.name}/{p.stem}", index[d.name]) for p in imgs]
    return ImageSet(root, modality, items, names)


def resolve_modality(root: Path, modality: str | None, default: str | None = None,
                     source: str = "rgb") -> tuple[Path, str]:
    """Where the images of ``root`` live and which modality they are. Unstated, a paired root's modality is its one
    subfolder that is not ``source`` (the modality the source models were trained on)."""
    if modality is not None and modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    if root.name in MODALITIES:
        if modality and modality != root.name:
            raise ConfigError(f"folder {root} is named {root.name!r} but --modality {modality} was given")
        return root, root.name
    present = [d.name for d in _subdirs(root) if d.name in MODALITIES]
    if modality and modality in present:
        return root / modality, modality
    if not modality:
        targets = [m for m in present if m != source]
        if len(targets) == 1:
            return root / targets[0], targets[0]
        if default:
            return root, default
        raise ConfigError(f"cannot tell the modality of {root}: name the folder after it "
                          f"({', '.join(MODALITIES)}) or pass --modality")
    return root, modality


def labeled_folder(root: Path, modality: str | None = "rgb", class_names: list[str] | None = None) -> ImageSet:
    """Labeled images in class folders (a paired root with a modality subfolder works too)."""
    root = require_dir(Path(root), "data folder")
    if is_session(root):
        return session_images(root, modality, labels="required", class_names=class_names)
    folder, modality = resolve_modality(root, modality)
    return _scan(folder, modality, "required", "data folder", class_names)


def target_folder(root: Path, modality: str | None = None, class_names: list[str] | None = None,
                  source: str | None = None) -> ImageSet:
    """Target-modality images, flat or in class folders; labels are used when present.

    ``source``: the modality the source models were trained on (adaptation); the target must be another one, and
    an unstated target modality is the one of the folder that is not ``source``."""
    root = require_dir(Path(root), "target folder")
    if is_session(root):
        images = session_images(root, modality, labels="optional", class_names=class_names, source=source or "rgb")
    else:
        folder, modality = resolve_modality(root, modality, source=source or "rgb")
        images = _scan(folder, modality, "optional", "target folder", class_names)
    if source is not None and images.modality == source:
        others = ", ".join(m for m in MODALITIES if m != source)
        raise ConfigError(f"target folder {images.root} holds {source} images, the modality the source models were "
                          f"trained on; the target is another modality ({others}): pass --modality or its own folder")
    return images


def paired_folder(root: Path, a: str = "rgb", b: str | None = None) -> PairedSet:
    """Pairs of ROOT/<a>/… and ROOT/<b>/… images matched by class and stem (never by list position)."""
    root = require_dir(Path(root), "paired folder")
    if is_session(root):
        return session_pairs(root, a, b)
    present = [d.name for d in _subdirs(root) if d.name in MODALITIES]
    b = b or partner_modality(present, a, f"paired folder {root}", suffix="/")
    for m in (a, b):
        if m not in present:
            raise DataError(f"paired folder {root} has no {m}/ folder; expected ROOT/{a}/ and ROOT/{b}/")
    sa = _scan(root / a, a, "optional", "paired folder")
    sb = _scan(root / b, b, "optional", "paired folder")
    return match_pairs(root, sa, sb)


def partner_modality(present: list[str], a: str, where: str, suffix: str = "") -> str:
    """The one modality besides ``a`` that pairs are made with; an error unless there is exactly one."""
    others = [m for m in present if m != a]
    if len(others) != 1:
        raise DataError(f"{where} must hold {a}{suffix} and one target modality{' folder' if suffix else ''} "
                        f"({', '.join(m for m in MODALITIES if m != a)}); found {', '.join(present) or 'none'}")
    return others[0]


def match_pairs(root: Path, sa: ImageSet, sb: ImageSet) -> PairedSet:
    by_key = {it.key: it for it in sb.items}
    items_a, items_b = [], []
    for it in sa.items:
        other = by_key.get(it.key)
        if other is not None:
            items_a.append(it)
            items_b.append(other)
    if not items_a:
        raise DataError(f"paired folder {root}: no {sa.modality}/{sb.modality} pairs share a name; "
                        f"pairs are matched by <class>/<stem>, e.g. {sa.modality}/0001.png ↔ {sb.modality}/0001.png")
    classes = sa.class_names if sa.class_names == sb.class_names else None
    return PairedSet(root, (sa.modality, sb.modality),
                     ImageSet(sa.root, sa.modality, items_a, classes),
                     ImageSet(sb.root, sb.modality, items_b, classes))


# ----------------------------------------------------------------------------------------------------------------
# Capture sessions (format: data/session.py) as data sets


def _pick_modality(session: Session, modality: str | None, source: str = "rgb") -> str:
    present = session.modalities
    if modality is not None:
        if modality not in MODALITIES:
            raise ConfigError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
        if modality not in present:
            raise DataError(f"session {session.root} has no {modality} frames; it holds {', '.join(present) or 'none'}")
        return modality
    targets = [m for m in present if m != source]
    if len(targets) == 1:
        return targets[0]
    raise ConfigError(f"session {session.root} holds {', '.join(present) or 'no frames'}; pass --modality")


def _image_set(session: Session, frames: list[SessionFrame], modality: str, labels: str,
               class_names: list[str] | None) -> ImageSet:
    root = session.root
    if not frames:
        raise DataError(f"session {root} has no {modality} frames; capture some with `socketedge capture`")
    unlabeled = [f for f in frames if not f.label]
    if labels == "required" and unlabeled:
        raise DataError(f"session {root}: {len(unlabeled)} of {len(frames)} {modality} frames have no label "
                        f"(e.g. frame {unlabeled[0].id}); capture labeled frames with --label CLASS")
    if unlabeled:  # labels are used only when every frame has one
        return ImageSet(root, modality, [ImageItem(root / f.files[modality], f.stem) for f in frames], None)
    names, index = class_index({f.label for f in frames}, class_names, f"session {root}")
    items = [ImageItem(root / f.files[modality], f.key, index[f.label]) for f in frames]
    return ImageSet(root, modality, items, names)


def _sorted_frames(session: Session) -> list[SessionFrame]:
    return sorted(session.frames, key=lambda f: ((f.label or ""), f.id))


def session_images(root: Path, modality: str | None = None, labels: str = "optional",
                   class_names: list[str] | None = None, source: str = "rgb") -> ImageSet:
    """The ``modality`` images of a session; labels: 'required' (every frame labeled) or 'optional'. Unstated, the
    modality is the session's one that is not ``source`` (the source models' modality)."""
    session = load_session(root)
    modality = _pick_modality(session, modality, source)
    frames = [f for f in _sorted_frames(session) if modality in f.files]
    return _image_set(session, frames, modality, labels, class_names)


def session_pairs(root: Path, a: str = "rgb", b: str | None = None) -> PairedSet:
    """Frames holding both ``a`` and ``b`` images, paired by frame (never by list position)."""
    session = load_session(root)
    b = b or partner_modality(session.modalities, a, f"session {root}")
    for m in (a, b):
        _pick_modality(session, m)
    frames = [f for f in _sorted_frames(session) if a in f.files and b in f.files]
    if not frames:
        raise DataError(f"session {root} has no frame with both {a} and {b}; capture with --mode paired")
    sa = _image_set(session, frames, a, "optional", None)
    sb = _image_set(session, frames, b, "optional", None)
    return PairedSet(Path(root), (a, b), sa, sb)
