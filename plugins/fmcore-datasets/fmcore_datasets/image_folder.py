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

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

import attrs
import numpy as np
import torch

from fmcore import ArrayDataset, Batch, DataInfo, MapDataset
from fmcore.core.options import OptionValueError, help_field, positive


def _channels(_inst, attribute: attrs.Attribute, value: int) -> None:
    if value not in (1, 3):
        raise OptionValueError(attribute.name, value, "1 (grayscale) or 3 (RGB)")


#: name prefix of the uint8 cache of a streamed image folder (a dot file: the folder's listing ignores it)
CACHE_PREFIX = ".fmcore-cache-"
#: images decoded per chunk while the cache is built
CACHE_CHUNK = 512


@attrs.define(kw_only=True)
class ImageFolderOptions:
    path: str = help_field(help="folder of images, or of one sub-folder of images per class (relative to the "
                           "recipe)", file=True)
    size: int = help_field(32, "images are resized (shorter side) and centre-cropped to size x size",
                           validator=positive)
    channels: int = help_field(3, "1 (grayscale) or 3 (RGB)", validator=_channels)
    flip: bool = help_field(False, "flip each training sample left-right with probability 1/2")
    classes: bool = help_field(True, "use the sub-folders as class labels (false: one unlabelled set)")
    stream: bool = help_field(False, "decode images as training needs them (in DataLoader workers) instead of "
                              "all of them before step 1")
    cache: bool = help_field(False, "with stream: decode every image once into a uint8 memory-mapped cache, "
                             f"{CACHE_PREFIX}SIZE-CHANNELS.npy in the folder (rebuilt when the files change)")


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as float32 [channels, size, size] in [-1, 1]; raises OSError/ValueError if it cannot be read."""
    return to_model(load_pixels(path, size, channels))


def to_model(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels [C, H, W] -> float32 in [-1, 1]: ``p / 127.5 - 1``."""
    return pixels.astype(np.float32) / 127.5 - 1.0


def load_pixels(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 [channels, size, size] (resized, centre-cropped)."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("L" if channels == 1 else "RGB")
        w, h = img.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(arr[None] if channels == 1 else arr.transpose(2, 0, 1))


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


def list_images(options: ImageFolderOptions) -> tuple[Path, list[tuple[Path, int]], list[str]]:
    """(root, [(file, label)], class names) of the folder, every entry checked to be a regular file."""
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
    bad = [f"{p.relative_to(root)} ({kinds[p]})" for p, _ in files if kinds[p] != "file"]
    if bad:
        _refuse(bad, len(files), root)
    return root, files, [d.name for d in subdirs] if subdirs and options.classes else []


def _refuse(bad: list[str], total: int, root: Path) -> None:
    shown = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
    raise ValueError(f"{len(bad)} of {total} files in {str(root)!r} could not be read as images: "
                     f"{shown}. Remove or fix them (files starting with '.' are ignored)")


def _why(path: Path, exc: BaseException, root: Path) -> str:
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):
        return (f"{path.relative_to(root)} (larger than Pillow's decompression-bomb limit of {_bomb_limit()} pixels, "
                f"a guard against malicious files: {exc}; shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if "
                "you trust it)")
    return f"{path.relative_to(root)} ({type(exc).__name__}: {exc})"


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What decoding a bad file raises (Pillow's decompression-bomb error is its own type)."""
    from PIL import Image

    return OSError, ValueError, SyntaxError, Image.DecompressionBombError


class ImageFolder(ArrayDataset):
    """Images from a folder (one sub-folder per class for labels), resized and centre-cropped, in [-1, 1]; with
    ``stream``, a :class:`StreamedImageFolder` instead."""

    Options = ImageFolderOptions

    def __new__(cls, options: ImageFolderOptions):
        if options.stream and cls is ImageFolder:
            return StreamedImageFolder(options)
        return super().__new__(cls)

    def __init__(self, options: ImageFolderOptions):
        self.options = options
        root, files, self.class_names = list_images(options)
        images, labels, bad = [], [], []
        for p, k in files:
            try:
                images.append(load_image(p, options.size, options.channels))
                labels.append(k)
            except _decode_errors() as exc:
                bad.append(_why(p, exc, root))
        if bad:
            _refuse(bad, len(files), root)
        labelled = bool(self.class_names)
        data = torch.from_numpy(np.stack(images))
        super().__init__(data, torch.tensor(labels) if labelled else None, len(self.class_names))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        batch = super().sample(n, generator)
        return flip_batch(batch, generator) if self.options.flip else batch


def flip_batch(batch: Batch, generator: torch.Generator | None = None) -> Batch:
    """Each image flipped left-right with probability 1/2 (one uniform draw per image from ``generator``, on
    the CPU, whatever the batch's device)."""
    flip = (torch.rand(batch.x.shape[0], generator=generator) < 0.5).to(batch.x.device)
    x = torch.where(flip[:, None, None, None], batch.x.flip(-1), batch.x)
    return Batch(x, batch.labels)


class StreamedImageFolder(MapDataset):
    """``image_folder`` with ``stream = true``: the file list is read up front, each image is decoded when it
    is read (in DataLoader workers), or, with ``cache = true``, from a uint8 memory-mapped cache decoded
    once (in chunks, with a progress bar, written atomically; rebuilt when the file list, sizes or
    modification times change). Pixels are those of the in-memory data set, bit for bit."""

    Options = ImageFolderOptions

    def __init__(self, options: ImageFolderOptions):
        self.options = options
        self.root, files, self.class_names = list_images(options)
        self.files = [p for p, _ in files]
        self.labels = [k for _, k in files]
        self._info = DataInfo((options.channels, options.size, options.size), len(self.class_names))
        self.cache_path = None
        if options.cache:
            self.cache_path = self.root / f"{CACHE_PREFIX}{options.size}-{options.channels}.npy"
            self._build_cache()
        self._pixels = None

    @property
    def info(self) -> DataInfo:
        return self._info

    def __len__(self) -> int:
        return len(self.files)

    def _fingerprint(self) -> str:
        """What the cache was made from: every file's name, size and modification time, and the options."""
        h = hashlib.sha256(f"{self.options.size} {self.options.channels}\n".encode())
        for p in self.files:
            st = p.stat()
            h.update(f"{p.relative_to(self.root)} {st.st_size} {st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def _build_cache(self) -> None:
        from tqdm.auto import tqdm

        stamp = self.cache_path.with_suffix(".json")
        fingerprint = self._fingerprint()
        if stamp.is_file() and self.cache_path.is_file():
            try:
                if json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
                    return
            except ValueError:
                pass  # a damaged stamp: rebuild
        tmp = self.cache_path.with_name(f".tmp-{os.getpid()}-{self.cache_path.name}")
        shape = (len(self.files), self.options.channels, self.options.size, self.options.size)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        bad = []
        try:
            with tqdm(total=len(self.files), unit="image", desc="decoding the image cache", file=sys.stderr,
                      disable=None) as bar:
                for start in range(0, len(self.files), CACHE_CHUNK):
                    for i in range(start, min(start + CACHE_CHUNK, len(self.files))):
                        try:
                            out[i] = load_pixels(self.files[i], self.options.size, self.options.channels)
                        except _decode_errors() as exc:
                            bad.append(_why(self.files[i], exc, self.root))
                    bar.update(min(CACHE_CHUNK, len(self.files) - start))
            if bad:
                _refuse(bad, len(self.files), self.root)
            out.flush()
            del out
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.cache_path)
        finally:
            tmp.unlink(missing_ok=True)
        stamp_tmp = stamp.with_name(f".tmp-{os.getpid()}-{stamp.name}")
        stamp_tmp.write_text(json.dumps({"fingerprint": fingerprint, "images": len(self.files)}))
        os.replace(stamp_tmp, stamp)

    def item(self, i: int) -> tuple[np.ndarray, int]:
        if self.cache_path is None:
            try:
                pixels = load_pixels(self.files[i], self.options.size, self.options.channels)
            except _decode_errors() as exc:
                raise ValueError(f"image {_why(self.files[i], exc, self.root)} could not be read while training "
                                 "streamed it; remove or fix it and resume") from None
        else:
            if self._pixels is None:  # opened in each process (DataLoader workers open their own)
                self._pixels = np.load(self.cache_path, mmap_mode="r", allow_pickle=False)
            pixels = self._pixels[i]
        return to_model(pixels), self.labels[i]

    def augment(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        return flip_batch(batch, generator) if self.options.flip else batch

    def __getstate__(self):
        return {**self.__dict__, "_pixels": None}
