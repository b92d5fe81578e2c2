"""Images from a folder (PNG, JPEG, ...), decoded with Pillow, optionally one sub-folder per class.

Layout: either images directly in ``path`` (unlabelled), or one sub-folder per class (``path/cat/*.png``,
``path/dog/*.jpg``): labels are the sub-folders' indices in sorted name order. Each image is converted to
grayscale (``channels = 1``) or RGB (``channels = 3``), resized so that its shorter side is ``size``
(bicubic) and centre-cropped to ``size x size``, then mapped to [-1, 1]. Files whose names start with a dot
are ignored; nothing else is skipped silently: every other entry must be a regular file that decodes as an
image (named pipes, sockets and devices are refused without being opened, so they cannot hang the load), every
class folder must hold at least one image, and Pillow's decompression-bomb limit is reported as such. The data
set refuses to load otherwise, naming every file that failed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs
import numpy as np
import torch

from fmcore import ArrayDataset, Batch
from fmcore.core.options import OptionValueError, help_field, positive


def _channels(_inst, attribute: attrs.Attribute, value: int) -> None:
    if value not in (1, 3):
        raise OptionValueError(attribute.name, value, "1 (grayscale) or 3 (RGB)")


@attrs.define(kw_only=True)
class ImageFolderOptions:
    path: str = help_field(help="folder of images, or of one sub-folder of images per class (relative to the "
                           "recipe)", file=True)
    size: int = help_field(32, "images are resized (shorter side) and centre-cropped to size x size",
                           validator=positive)
    channels: int = help_field(3, "1 (grayscale) or 3 (RGB)", validator=_channels)
    flip: bool = help_field(False, "flip each training sample left-right with probability 1/2")
    classes: bool = help_field(True, "use the sub-folders as class labels (false: one unlabelled set)")


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as float32 [channels, size, size] in [-1, 1]; raises OSError/ValueError if it cannot be read."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("L" if channels == 1 else "RGB")
        w, h = img.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.float32)
    arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return arr / 127.5 - 1.0


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _kind(path: Path) -> str:
    """'dir', 'file', or why the entry cannot be an image (not opened: a pipe would block)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "not a regular file (a named pipe, socket or device)"


def _bomb_limit() -> str:
    from PIL import Image

    return f"{Image.MAX_IMAGE_PIXELS:,}" if Image.MAX_IMAGE_PIXELS else "none"


class ImageFolder(ArrayDataset):
    """Images from a folder (one sub-folder per class for labels), resized and centre-cropped, in [-1, 1]."""

    Options = ImageFolderOptions

    def __init__(self, options: ImageFolderOptions):
        self.options = options
        root = Path(options.path)
        kind = _kind(root)
        if kind != "dir":
            raise ValueError(f"image folder {str(root)!r} not found" if kind.endswith("(No such file or directory)")
                             else f"image folder {str(root)!r} {'is a file, not a folder' if kind == 'file' else kind}")
        entries = _visible(root)
        kinds = {p: _kind(p) for p in entries}
        subdirs = [p for p in entries if kinds[p] == "dir"]
        loose = [p for p in entries if kinds[p] != "dir"]
        if subdirs and loose:
            raise ValueError(f"{str(root)!r} mixes sub-folders ({subdirs[0].name}, ...) with files "
                             f"({loose[0].name}, ...); use one sub-folder per class, or only files")
        files: list[tuple[Path, int]] = []
        bad: list[str] = []
        if subdirs:
            empty = []
            for k, d in enumerate(subdirs):
                inside = _visible(d)
                kinds.update({p: _kind(p) for p in inside})
                nested = [p for p in inside if kinds[p] == "dir"]
                if nested:
                    raise ValueError(f"{str(d)!r} contains a folder ({nested[0].name}); class folders hold files")
                if not inside:
                    empty.append(d.name)
                files += [(p, k if options.classes else 0) for p in inside]
            if empty:
                raise ValueError(f"{len(empty)} class folder(s) of {str(root)!r} hold no images: "
                                 f"{', '.join(empty[:20])}; remove them or add images (class labels are the folders' "
                                 "indices, so an empty class would be counted silently)")
        else:
            files = [(p, 0) for p in loose]
        if not files:
            raise ValueError(f"image folder {str(root)!r} holds no images")
        from PIL import Image

        images, labels = [], []
        for p, k in files:
            if kinds[p] != "file":
                bad.append(f"{p.relative_to(root)} ({kinds[p]})")
                continue
            try:
                images.append(load_image(p, options.size, options.channels))
                labels.append(k)
            except (OSError, ValueError, SyntaxError) as exc:
                bad.append(f"{p.relative_to(root)} ({type(exc).__name__}: {exc})")
            except Image.DecompressionBombError as exc:
                bad.append(f"{p.relative_to(root)} (larger than Pillow's decompression-bomb limit of "
                           f"{_bomb_limit()} pixels, a guard against malicious files: {exc}; shrink the image, or "
                           "raise PIL.Image.MAX_IMAGE_PIXELS if you trust it)")
        if bad:
            shown = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
            raise ValueError(f"{len(bad)} of {len(files)} files in {str(root)!r} could not be read as images: "
                             f"{shown}. Remove or fix them (files starting with '.' are ignored)")
        self.class_names = [d.name for d in subdirs] if subdirs and options.classes else []
        labelled = bool(self.class_names)
        data = torch.from_numpy(np.stack(images))
        super().__init__(data, torch.tensor(labels) if labelled else None, len(self.class_names))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        batch = super().sample(n, generator)
        if not self.options.flip:
            return batch
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], batch.x.flip(-1), batch.x)
        return Batch(x, batch.labels)
