"""Image archives: a zip of images with a ``dataset.json`` of labels, read without unpacking.

``zip:PATH`` reads the layout of stylegan2-ada-pytorch's ``dataset_tool.py``
(Karras et al. 2020), which ``ganforge data pack`` writes too: image files
(PNG, or any kind data/folder.py reads) anywhere in the archive, taken in
sorted name order, and an optional ``dataset.json`` whose ``labels`` is null
or a list of ``[name, class index]`` pairs. ganforge adds ``classes`` (the
class names) and ``resolution``; readers that do not know them ignore them.
``PATH`` may also be a folder laid out the same way (an unpacked archive).

Nothing is decoded to open an archive but its first image (for the channels
and size when the config leaves them open); images are decoded when read
(:class:`ArchiveSource`). A zip's member table is read once, into a few
numpy arrays of offsets and sizes (:class:`_Members`); a member is then one
positioned read (``os.pread``, safe from any forked worker) and a CRC-32
check. The standard library's ``ZipFile`` is not kept open for this: it holds
a Python object per member, about 600 bytes each (62 MB for 100,000
images), and every forked worker that opened it would hold its own copy.
Members compressed otherwise than stored or deflated (bzip2, LZMA) are read
through ``ZipFile``. A member that does not decode while streaming is
one line naming it; decoded whole (data.cache=ram) it is skipped and counted
like an unreadable file of an image folder.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import UserError
from .. import memory
from .folder import GRAY_MODES, IMAGE_SUFFIXES, image_to_array, list_images, open_image, parallel_map

INDEX = "dataset.json"


class _Members:
    """Where the members ``names`` of a zip are: local header offset, compressed and plain sizes, CRC-32 and
    compression method, one numpy array each (no Python object per member, so forked workers share them)."""

    def __init__(self, path: Path, infos: dict, names: list[str]):
        rows = [infos[n] for n in names]
        self.offset = np.array([i.header_offset for i in rows], dtype=np.int64)
        self.size = np.array([i.compress_size for i in rows], dtype=np.int64)
        self.plain = np.array([i.file_size for i in rows], dtype=np.int64)
        self.crc = np.array([i.CRC for i in rows], dtype=np.uint32)
        self.method = np.array([-1 if i.flag_bits & 1 else i.compress_type for i in rows], dtype=np.int16)
        self.path, self._file, self._zip, self._pid = path, None, None, None

    def read(self, i: int, name: str) -> bytes:
        """Member ``i``'s bytes, checked against its CRC-32; raises on a damaged or truncated member."""
        method = int(self.method[i])
        if method == -1:
            raise ValueError("encrypted member")
        if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):     # bzip2, LZMA: the standard library's way
            if self._pid != os.getpid():
                self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
            return self._zip.read(name)
        if self._file is None:                 # pread takes no file position, so a forked worker may share it
            self._file = open(self.path, "rb")
        fd, at, size = self._file.fileno(), int(self.offset[i]), int(self.size[i])
        head = os.pread(fd, 30, at)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise ValueError("bad local file header")
        skip = 30 + sum(struct.unpack("<HH", head[26:30]))
        data = os.pread(fd, size, at + skip)
        if len(data) < size:
            raise EOFError("the archive ends inside this member")
        if method == zipfile.ZIP_DEFLATED:
            data = zlib.decompress(data, -15)
        if len(data) != int(self.plain[i]) or zlib.crc32(data) != int(self.crc[i]):
            raise ValueError("bad CRC-32 or size")
        return data


class ArchiveSource:
    """The images ``names`` of the archive at ``path`` (a zip file or a folder), decoded on read as uint8
    (``channels``, ``side``, ``side``); ``infos``: a zip's ``ZipInfo`` by name (dropped once its offsets and
    sizes are kept)."""

    def __init__(self, path: Path, names: list[str], channels: int, side: int, infos: Optional[dict] = None):
        self.path, self.names, self.channels, self.side = Path(path), names, channels, side
        self.is_zip = self.path.is_file()
        self._members = _Members(self.path, infos, names) if self.is_zip else None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def shape(self) -> tuple:
        return (self.channels, self.side, self.side)

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def open_member(self, i: int):
        """Image ``i``'s file, as a binary file."""
        if not self.is_zip:
            return open(self.path / self.names[i], "rb")
        return io.BytesIO(self._members.read(i, self.names[i]))

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 (C, side, side); raises what the zip or the decoder raises."""
        with self.open_member(i) as f, open_image(f) as im:
            im.load()
            return image_to_array(im, self.channels, self.side)

    def try_decode(self, i: int):
        """Image ``i``, or the reason it does not decode (a string)."""
        try:
            return self.decode(i)
        except Exception as e:  # any zip or decoder failure means an unusable member
            return f"{self.names[i]}: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"

    def read(self, rows: torch.Tensor) -> torch.Tensor:
        """Images ``rows`` decoded, stacked; a member that fails is one line naming it."""
        out = []
        for i in rows.tolist():
            a = self.try_decode(i)
            if isinstance(a, str):
                raise UserError(f"{self.path}: member {a}; pack the dataset again (ganforge data pack), or train "
                                "with data.cache=ram, which skips damaged members")
            out.append(a)
        return torch.from_numpy(np.stack(out))


def _is_hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _list(path: Path) -> tuple[list[str], Optional[bytes], int, int, Optional[dict]]:
    """(image names sorted, the dataset.json bytes or None, how many other members, how many hidden, a zip's
    ZipInfo by name or None)."""
    if path.is_dir():
        files, others, hidden = list_images(path)
        index = path / INDEX
        text = index.read_bytes() if index.is_file() else None
        return sorted(p.relative_to(path).as_posix() for p in files), text, others - (text is not None), hidden, None
    try:
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            text = z.read(INDEX) if INDEX in z.namelist() else None
    except (zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path} is not a readable zip archive ({e}); a truncated download or copy? pack it again "
                        "with ganforge data pack") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError) as e:
        raise UserError(f"{path}: cannot read this zip archive ({e})") from None
    names, others, hidden = [], 0, 0
    for info in infos:
        if _is_hidden(info.filename):
            hidden += 1
        elif Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
            names.append(info.filename)
        elif info.filename != INDEX:
            others += 1
    return sorted(names), text, others, hidden, {i.filename: i for i in infos}


def _labels(path: Path, text: Optional[bytes], names: list[str]):
    """(names kept, labels or None, class names or None, how many labelled names are not in the archive, how
    many images had no label and were left out)."""
    if text is None:
        return names, None, None, 0, 0
    try:
        meta = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: {INDEX} is not valid JSON ({e})") from None
    pairs = meta.get("labels") if isinstance(meta, dict) else None
    if pairs is None:
        return names, None, None, 0, 0
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                              for p in pairs):
        raise UserError(f"{path}: {INDEX} 'labels' must be null or a list of [file name, class index] pairs")
    table = {}
    for name, label in pairs:
        if isinstance(label, list):
            raise UserError(f"{path}: {INDEX} gives {name} the label vector {label[:4]}...; ganforge's conditional "
                            "models take one class index per image")
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < 100_000:
            raise UserError(f"{path}: {INDEX} gives {name} the label {label!r}; labels are class indices 0 to 99999")
        table[name] = label
    have = set(names)
    missing = sum(n not in have for n in table)
    kept = [n for n in names if n in table]
    if not kept:
        raise UserError(f"{path}: none of the {len(names)} images has a label in {INDEX} "
                        f"(it labels {len(table)} names, e.g. {next(iter(table), 'none')}); the names must be the "
                        "images' paths inside the archive")
    y = torch.tensor([table[n] for n in kept], dtype=torch.int64)
    classes = meta.get("classes")
    if not (isinstance(classes, list) and len(classes) > int(y.max()) and all(isinstance(c, str) for c in classes)):
        classes = [str(i) for i in range(int(y.max()) + 1)]
    return kept, y, classes, missing, len(names) - len(kept)


def open_archive(location: str, channels: Optional[int], resolution: Optional[int]):
    """(an :class:`ArchiveSource`, labels or None, class names or None, a line of what was skipped or None)."""
    path = Path(location).expanduser()
    if not path.exists():
        raise UserError(f"archive {path} does not exist")
    if not (path.is_dir() or path.is_file()):
        raise UserError(f"archive {path} is not a regular file (a device, FIFO or socket)")
    names, text, others, hidden, infos = _list(path)
    if not names:
        raise UserError(f"{path} holds no images ({others} other files); pack one with ganforge data pack")
    names, y, classes, unmatched, unlabelled = _labels(path, text, names)
    src = ArchiveSource(path, names, channels or 1, resolution or 1, infos)
    del infos
    first = _first_image(src, channels, resolution)
    src.channels, src.side = first
    parts = [f"{n} {w}" for n, w in ((unlabelled, "images without a label"), (others, "not images"),
                                     (hidden, "hidden"), (unmatched, f"labels in {INDEX} for files not in it")) if n]
    skipped = f"skipped in {path}: {'; '.join(parts)}" if parts else None
    return src, y, classes, skipped


def _first_image(src: ArchiveSource, channels: Optional[int], resolution: Optional[int]) -> tuple[int, int]:
    """The channels and side to decode to: the config's, else those of the first image that opens."""
    if channels and resolution:
        return channels, resolution
    for i in range(min(64, len(src))):
        try:
            with src.open_member(i) as f, open_image(f) as im:
                c = channels or (1 if im.mode in GRAY_MODES else 3)
                return c, resolution or min(im.size)
        except Exception:  # an unreadable member: the next one tells
            continue
    raise UserError(f"{src.path}: none of its first {min(64, len(src.names))} images opens "
                    f"(e.g. {src.names[0]}); pack the dataset again with ganforge data pack")


_SOURCE: Optional[ArchiveSource] = None      # the archive a forked decoding worker reads (set before the fork)


def _decode_member(i: int):
    return _SOURCE.try_decode(i)


def decode_archive(src: ArchiveSource) -> tuple[torch.Tensor, list[int], list[str]]:
    """Every image of the archive decoded into one uint8 tensor (in worker processes for large archives):
    (the tensor, the indices that decoded, the reasons of those that did not)."""
    global _SOURCE
    memory.check(len(src) * src.channels * src.side ** 2, f"{src.path} decoded ({len(src)} images of "
                 f"{src.channels}x{src.side}x{src.side}, uint8)", "stream it with data.cache=none")
    out = torch.empty((len(src), *src.shape), dtype=torch.uint8)
    kept, bad = [], []
    _SOURCE = src
    try:
        for i, a in enumerate(parallel_map(_decode_member, range(len(src)))):
            if isinstance(a, str):
                bad.append(a)
            else:
                out[len(kept)].numpy()[...] = a
                kept.append(i)
    finally:
        _SOURCE = None
    if not kept:
        raise UserError(f"{src.path}: none of its {len(src)} images decodes (e.g. {bad[0]})")
    return out[:len(kept)], kept, bad
