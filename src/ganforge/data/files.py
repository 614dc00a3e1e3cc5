"""Datasets from files the user has: an image folder, npz arrays, IDX, CIFAR-10.

- ``folder:PATH``: a folder of images (data.folder).
- ``npz:PATH``: array ``x`` (N, H, W), (N, H, W, C), (N, C, H, W) or (N, d),
  optional ``y`` (class indices below 100,000); loaded without pickle (an
  object array is refused).
- ``idx:PATH``: MNIST / Fashion-MNIST IDX files (LeCun et al. 1998; Xiao et
  al. 2017), gzipped or not: a folder with ``train-images-idx3-ubyte[.gz]``
  (and the labels file), or an images file.
- ``cifar10:PATH``: the python batches of CIFAR-10 (Krizhevsky 2009): a
  folder with ``data_batch_1..5`` (or ``cifar-10-batches-py/``), unpickled
  by a restricted unpickler that only builds numpy arrays and plain values.

Loaders return (images (N, C, H, W): uint8 from CIFAR-10, float32 in [0, 1]
from npz and IDX; or vectors (N, d),
labels int64 or None, class names or None); the npz and IDX loaders add the
record of how the pixel values were read (transform.array_to_unit: the range
comes from ``value_range``, the npz's own ``range`` entry or the dtype, never
from the values).
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from .. import memory
from ..errors import UserError
from .folder import need_dir
from .transform import array_to_unit

# -------------------------------------------------------------------- npz

MAX_LABEL = 100_000       # labels are class indices; a larger one is a mistake (the class list would not fit)


def _npz_array(z, key: str, p: Path) -> np.ndarray:
    try:
        return z[key]
    except ValueError as e:
        if "allow_pickle" not in str(e):      # numpy's words for an object array read without pickle
            raise
        raise UserError(f"{p}: '{key}' is an array of Python objects; npz files are read without pickle, so save "
                        f"numbers (e.g. {key}.astype(np.float32))") from None


def _declared_bytes(z, key: str, p: Path) -> None:
    """Check the size an npz member's .npy header declares before numpy allocates it: a few hundred KB of
    compressed zeros can declare gigabytes, and a header can claim more than the member holds."""
    info = z.zip.getinfo(f"{key}.npy")
    with z.zip.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    n = math.prod(shape) * dtype.itemsize
    if n > info.file_size:
        raise UserError(f"{p}: '{key}' declares shape {shape} of {dtype} ({memory.human(n)}) but the archive holds "
                        f"{memory.human(info.file_size)}: the file is damaged")
    memory.check(3 * n, f"{p}: '{key}' of shape {shape} ({dtype}, as float32 too)", "use a smaller file")


def need_file(p: Path, what: str, folder_hint: str = "") -> None:
    """One line for a path that is not a regular file: missing, a folder, or a device, FIFO or socket
    (/dev/zero would be read forever, a FIFO waits for a writer)."""
    if p.is_file():
        return
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder{folder_hint}")
    if p.exists():
        raise UserError(f"{what} {p} is not a regular file (a device, FIFO or socket); give a file of data")
    raise UserError(f"{what} {p} does not exist")


def load_npz(path: str, value_range=None):
    """``value_range``: the user's LO,HI for the pixel values (data.range, --range); else the file's ``range``
    entry (``ganforge sample`` writes [-1, 1]), else the dtype's."""
    p = Path(path).expanduser()
    need_file(p, "npz file", "; give the .npz file itself (or data=folder:PATH for images)")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "x" not in z.files:
                raise UserError(f"{p} has no array 'x' (found: {', '.join(z.files) or 'none'})")
            _declared_bytes(z, "x", p)
            x = _npz_array(z, "x", p)
            y = _npz_array(z, "y", p) if "y" in z.files else None
            saved = _npz_array(z, "range", p).tolist() if "range" in z.files else None
    except UserError:
        raise
    except Exception as e:
        with open(p, "rb") as f:
            head = f.read(6)
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}" if str(e) else type(e).__name__
        what = ("a single .npy array, not an .npz archive" if head == b"\x93NUMPY" else
                "an npz of Python objects ('x' must hold numbers: npz files are read without pickle)"
                if "allow_pickle" in reason else
                "not an npz file (an npz is a zip archive; this file is not one)" if head[:2] != b"PK" else
                f"a damaged npz archive, perhaps cut short ({reason})")
        raise UserError(f"{p} is {what}; write one with np.savez(PATH, x=array)") from None
    if x.ndim == 0 or x.shape[0] == 0:
        raise UserError(f"{p}: 'x' holds no samples (shape {x.shape})")
    if x.size == 0:
        raise UserError(f"{p}: 'x' of shape {x.shape} holds no values")
    if y is not None:
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
            raise UserError(f"{p}: 'y' must be {x.shape[0]} integer labels, got shape {y.shape} of {y.dtype}")
        if y.min() < 0 or y.max() >= MAX_LABEL:
            raise UserError(f"{p}: labels in 'y' must be class indices from 0 to {MAX_LABEL - 1}, "
                            f"found {y.min()} to {y.max()}")
        y = torch.from_numpy(y.astype(np.int64))
    if x.ndim == 2:
        with np.errstate(over="ignore"):
            v = x.astype(np.float32) if x.dtype.kind in "iuf" else None
        if v is None or not np.isfinite(v).all():   # float64 beyond float32's 3.4e38 counts as infinite
            raise UserError(f"{p}: 'x' must hold finite numbers (float32), got {x.dtype}"
                            + ("" if v is None else f" from {x.min()} to {x.max()}"))
        return torch.from_numpy(v), y, None, None
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)
        elif x.shape[1] not in (1, 3, 4):
            raise UserError(f"{p}: 'x' of shape {x.shape} has no channel axis of size 1, 3 or 4")
    else:
        raise UserError(f"{p}: 'x' must have 2 (vectors), 3 or 4 (images) dimensions, got shape {x.shape}")
    if value_range is None and saved is not None:
        value_range, by = saved, f"the file's 'range' {saved}"
    else:
        by = "--range / data.range"
    u, values = array_to_unit(x, f"{p} 'x'", value_range, by)
    return torch.from_numpy(np.ascontiguousarray(u)), y, None, values


# -------------------------------------------------------------------- idx

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as an array; the header's size is checked before the body is read, so a
    small gzip that would inflate to gigabytes is refused first."""
    need_file(path, "IDX file")
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            raw = f.read(4)
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
                what = "bad magic number " + raw[:4].hex(" ") if raw else "the file is empty"
                raise UserError(f"{path} is not an IDX file ({what}; MNIST's files start 00 00 08 03 for images, "
                                "00 00 08 01 for labels)")
            ndim = raw[3]
            raw += f.read(4 * ndim)
            if len(raw) < 4 + 4 * ndim:
                raise UserError(f"{path}: IDX header is truncated")
            dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
            dtype = np.dtype(IDX_TYPES[raw[2]])
            if 0 in dims:
                raise UserError(f"{path}: IDX header says shape {dims}, which holds no values")
            need = math.prod(dims) * dtype.itemsize            # Python ints: a bogus header cannot overflow
            held = None if gz else path.stat().st_size - len(raw)
            if held is not None and held != need:
                raise UserError(f"{path}: IDX header says {dims} ({need} bytes) but the file holds {held} bytes")
            memory.check(5 * need, f"{path}: IDX images of shape {dims} (as float32 too)", "use a smaller file")
            body = f.read(need + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read IDX file {path}: {e}") from None
    if len(body) != need:
        raise UserError(f"{path}: IDX header says {dims} ({need} bytes) but the file holds "
                        f"{'more' if len(body) > need else len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(folder: Path, stems: list[str]):
    for s in stems:
        for suffix in ("", ".gz"):
            p = folder / (s + suffix)
            if p.is_file():
                return p
    return None


def load_idx(path: str, value_range=None):
    p = Path(path).expanduser()
    if p.is_dir():
        images = _find(p, ["train-images-idx3-ubyte", "train-images.idx3-ubyte"])
        if images is None:
            raise UserError(f"{p} has no train-images-idx3-ubyte[.gz]; give the images file itself as idx:FILE")
    elif p.is_file():
        images = p
    else:
        need_file(p, "IDX path")
    x = read_idx(images)
    if x.ndim != 3:
        raise UserError(f"{images}: expected images of rank 3 (N, H, W), got rank {x.ndim}")
    name = images.name.replace(".gz", "")
    labels = _find(images.parent, [name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")])
    y = None
    if labels is not None and labels != images:
        y = read_idx(labels)
        if y.ndim != 1 or len(y) != len(x):
            raise UserError(f"{labels}: expected {len(x)} labels, got shape {y.shape}")
        if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= MAX_LABEL:
            raise UserError(f"{labels}: labels must be class indices from 0 to {MAX_LABEL - 1}, "
                            f"found {y.dtype} from {y.min()} to {y.max()}")
        y = torch.from_numpy(y.astype(np.int64))
    u, values = array_to_unit(np.ascontiguousarray(x), str(images), value_range, "--range / data.range")
    xu = torch.from_numpy(u).unsqueeze(1)
    classes = [str(i) for i in range(int(y.max()) + 1)] if y is not None else None
    return xu, y, classes, values


# ---------------------------------------------------------------- cifar10

class _SafeUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain values only; any other global is refused."""
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise UserError(f"{path} is not a CIFAR-10 python batch ({e}); give the folder extracted from "
                        "cifar-10-python.tar.gz") from None
    if not isinstance(d, dict):
        raise UserError(f"{path} is not a CIFAR-10 python batch (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def load_cifar10(path: str):
    root = Path(path).expanduser()
    need_dir(root, "CIFAR-10 folder")
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    batches = [root / f"data_batch_{i}" for i in range(1, 6) if (root / f"data_batch_{i}").is_file()]
    if not batches:
        raise UserError(f"{root} has no data_batch_1..5 (the python version of CIFAR-10)")
    xs, ys = [], []
    for b in batches:
        d = _unpickle(b)
        data, labels = d.get("data"), d.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise UserError(f"{b}: 'data' must be a uint8 array of shape (N, 3072)")
        if len(data) == 0:
            raise UserError(f"{b}: 'data' holds no images (shape {data.shape})")
        lab = np.asarray(labels if isinstance(labels, (list, tuple, np.ndarray)) else [])
        if lab.shape != (len(data),) or lab.dtype.kind not in "iu" or lab.min() < 0 or lab.max() > 9:
            raise UserError(f"{b}: 'labels' must list one class index 0..9 per image ({len(data)} of them)")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(lab.astype(np.int64))
    classes = [str(i) for i in range(10)]
    meta = root / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta).get("label_names")
        if isinstance(names, list) and len(names) == 10:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    x = torch.from_numpy(np.concatenate(xs))               # uint8
    return x, torch.from_numpy(np.concatenate(ys)), classes


FILE_KINDS = {
    "folder": "a folder of images (recursive)",
    "zip": "an image archive (stylegan2-ada's zip layout, or such a folder): streamed when it does not fit memory",
    "npz": "an .npz file with array x (and optional y)",
    "idx": "MNIST / Fashion-MNIST IDX files",
    "cifar10": "CIFAR-10 python batches",
}
