"""Animations: frames (H, W, 3 uint8) to an animated GIF or an H.264 MP4.

The GIF is written by Pillow with one shared palette (quantized from the
frames together, so colours do not flicker between frames). The MP4 is
H.264 in yuv420p (plays in browsers), encoded by PyAV's bundled FFmpeg;
yuv420p needs even sides, so frames are padded by one white pixel where
needed. A file named by a path is written through the one atomic write
(runs.atomic).
"""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..runs import atomic


def _check(frames: list) -> list[np.ndarray]:
    if not frames:
        raise ValueError("an animation needs at least one frame")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames) or len(shape) != 3 or shape[2] != 3:
        raise ValueError("frames must be (H, W, 3) arrays of one shape")
    return [np.ascontiguousarray(f, dtype=np.uint8) for f in frames]


def write_gif(frames: list, path, fps: float = 8, hold_last: float = 1.5) -> None:
    """An endlessly looping GIF (to a path or a binary file object); the last frame stays ``hold_last`` seconds."""
    from PIL import Image
    frames = _check(frames)
    strip = Image.fromarray(np.concatenate(frames[:: max(1, len(frames) // 16)], axis=0))
    palette = strip.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    ms = int(round(1000 / fps))
    durations = [ms] * (len(images) - 1) + [max(ms, int(hold_last * 1000))]
    buf = path if hasattr(path, "write") else io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=False)
    if buf is not path:
        atomic.write_bytes(Path(path), buf.getvalue())


def write_mp4(frames: list, path: Path, fps: float = 8, crf: int = 18) -> None:
    """An H.264 MP4 (yuv420p) at ``fps`` frames per second."""
    import av
    frames = _check(frames)
    h, w = frames[0].shape[:2]
    H, W = h + h % 2, w + w % 2
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as box:
        stream = box.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": str(crf)}
        for f in frames:
            if (H, W) != (h, w):
                f = np.pad(f, ((0, H - h), (0, W - w), (0, 0)), constant_values=255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    atomic.write_bytes(Path(path), buf.getvalue())


def read_mp4(path: Path) -> list[np.ndarray]:
    """The decoded frames of a video (for tests and checks)."""
    import av
    with av.open(str(path)) as box:
        return [f.to_ndarray(format="rgb24") for f in box.decode(video=0)]
