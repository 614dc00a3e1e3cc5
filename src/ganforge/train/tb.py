"""TensorBoard event files, written without TensorFlow or tensorboard.

An event file is a sequence of TFRecords (length, masked CRC-32C of the
length, payload, masked CRC-32C of the payload), each payload one
``tensorflow.Event`` protocol buffer. This module encodes the few messages a
run needs by hand: the file version, scalar summaries, PNG image summaries
and a ``SessionLog.START``, which tells TensorBoard to discard events past
the step a resumed run restarts from.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _event(step: int, wall_time: float, body: bytes) -> bytes:
    return _key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(step) + body


def scalar_value(tag: str, value: float) -> bytes:
    return _bytes(1, _bytes(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value))


def image_value(tag: str, png: bytes, height: int, width: int, channels: int) -> bytes:
    img = _key(1, 0) + _varint(height) + _key(2, 0) + _varint(width) + _key(3, 0) + _varint(channels) + _bytes(4, png)
    return _bytes(1, _bytes(1, tag.encode()) + _bytes(4, img))


class EventWriter:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = folder / name
        self._f = open(self.path, "ab")
        self._record(_event(0, time.time(), _bytes(3, b"brain.Event:2")))

    def _record(self, payload: bytes) -> None:
        head = struct.pack("<Q", len(payload))
        self._f.write(head + struct.pack("<I", masked_crc(head)) + payload + struct.pack("<I", masked_crc(payload)))

    def scalars(self, step: int, values: dict) -> None:
        body = b"".join(scalar_value(k, float(v)) for k, v in values.items())
        self._record(_event(step, time.time(), _bytes(5, body)))
        self._f.flush()

    def image(self, step: int, tag: str, png: bytes, height: int, width: int, channels: int) -> None:
        self._record(_event(step, time.time(), _bytes(5, image_value(tag, png, height, width, channels))))
        self._f.flush()

    def session_start(self, step: int) -> None:
        """Tell TensorBoard to drop events after ``step`` (a resume)."""
        self._record(_event(step, time.time(), _bytes(6, _key(1, 0) + _varint(1))))
        self._f.flush()

    def close(self) -> None:
        self._f.close()
