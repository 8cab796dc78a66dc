"""Byte surgery for the format tests, and the one way a refusal is checked.

A decoder that meets hostile bytes must raise an mlvault error of the expected class.
``refused`` catches only :class:`MlvaultError`, so a leaked ``struct.error``,
``ValueError`` or ``KeyError`` escapes it and fails the test with its own traceback.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vault.errors import ConfigurationError, IntegrityError, MlvaultError

VECTORS_PATH = Path(__file__).with_name("vectors.json")
REFUSALS: tuple[type[MlvaultError], ...] = (IntegrityError, ConfigurationError)


def load_vectors() -> dict[str, Any]:
    """The checked-in known-answer vectors."""
    return dict(json.loads(VECTORS_PATH.read_text()))


def refused(
    fn: Callable[..., object],
    *args: object,
    expect: type[MlvaultError] | tuple[type[MlvaultError], ...] = REFUSALS,
    **kwargs: object,
) -> MlvaultError:
    """Call ``fn(*args, **kwargs)``; it must raise ``expect`` (an mlvault error). Returns the error."""
    with pytest.raises(MlvaultError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, expect), f"{type(info.value).__name__}: {info.value}"
    return info.value


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    """``data`` with one bit inverted."""
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def put(data: bytes, offset: int, new: bytes) -> bytes:
    """``data`` with ``new`` written over it at ``offset``."""
    assert offset + len(new) <= len(data)
    return data[:offset] + new + data[offset + len(new) :]


def put_u32(data: bytes, offset: int, value: int) -> bytes:
    """``data`` with a big-endian u32 written at ``offset``."""
    return put(data, offset, struct.pack(">I", value))


def single_bit_flips(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Every (offset, bit, flipped copy) of ``data``."""
    for offset in range(len(data)):
        for bit in range(8):
            yield offset, bit, flip(data, offset, bit)
