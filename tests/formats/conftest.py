"""Fixtures for the byte-format tests: the known-answer vectors and the fixed keyring they use."""

from __future__ import annotations

from typing import Any

import pytest
from format_tampering import load_vectors
from make_vectors import keyring_from

from vault.crypto.keyring import Keyring


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return load_vectors()


@pytest.fixture(scope="session")
def inputs(vectors: dict[str, Any]) -> dict[str, Any]:
    return dict(vectors["inputs"])


@pytest.fixture(scope="session")
def ring(inputs: dict[str, Any]) -> Keyring:
    """The vectors' keyring: two epochs, current epoch 1."""
    return keyring_from(inputs)


@pytest.fixture(scope="session")
def stranger_ring() -> Keyring:
    """An unrelated keyring, fixed so failures reproduce."""
    return Keyring(bytes(range(0x11, 0x21)), b"\x77" * 32, (b"\x88" * 32, b"\x99" * 32))
