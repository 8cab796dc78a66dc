"""The plaintext vault config: anyone who can write the store can edit it, so every edit must be
refused with a ConfigurationError or produce a config that passes every range check.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from format_tampering import refused

from vault.errors import ConfigurationError
from vault.formats import config as config_format


@pytest.fixture
def golden(vectors: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(vectors["config"]))


def edited(doc: dict[str, Any], path: tuple[str, ...], value: object) -> bytes:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize("fmt", [0, 2, "1", 1.0, True, None])
def test_unknown_format_is_refused(golden: dict[str, Any], fmt: object) -> None:
    err = refused(config_format.decode, edited(golden, ("mlvault",), fmt), expect=ConfigurationError)
    assert "format" in str(err) or "malformed" in str(err)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("vault_id",), "00" * 15),
        (("vault_id",), "AB" * 16),
        (("vault_id",), 5),
        (("vault_id",), None),
        (("chunker", "min"), 0),
        (("chunker", "max"), 32 * 1024 * 1024),
        (("chunker", "avg"), 10**30),
        (("chunker", "min"), "x"),
        (("chunker", "min"), None),
        (("chunker", "min"), [1]),
        (("chunker",), None),
        (("chunker",), []),
        (("pack_size",), 0),
        (("pack_size",), 1 << 31),
        (("pack_size",), None),
        (("compression",), "gzip"),
        (("compression",), None),
        (("catalog",), 5),
        (("catalog",), ["x"]),
    ],
)
def test_out_of_range_or_mistyped_fields_are_refused(
    golden: dict[str, Any], path: tuple[str, ...], value: object
) -> None:
    refused(config_format.decode, edited(golden, path, value), expect=ConfigurationError)


@pytest.mark.parametrize("key", ["mlvault", "vault_id", "chunker", "pack_size", "compression"])
def test_missing_fields_are_refused(golden: dict[str, Any], key: str) -> None:
    del golden[key]
    refused(config_format.decode, json.dumps(golden).encode(), expect=ConfigurationError)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b"1",
        b'"mlvault"',
        b"null",
        b"[" * 60_000,
        b'{"a":' * 10_000,
        b'{"mlvault": 1e999}',
        b'{"mlvault": NaN}',
        b"1" * 5000,
        b' {"mlvault": 1, "vault_id": "000102030405060708090a0b0c0d0e0f", "chunker": {"min": Infinity}}',
        b' {"mlvault": 1, "vault_id": "000102030405060708090a0b0c0d0e0f", "chunker": {"min": NaN}}',
    ],
    ids=[
        "empty",
        "text",
        "bad-utf8",
        "list",
        "int",
        "string",
        "null",
        "deep-list",
        "deep-object",
        "inf-format",
        "nan-format",
        "huge-int",
        "inf-size",
        "nan-size",
    ],
)
def test_non_configs_are_refused(data: bytes) -> None:
    refused(config_format.decode, data, expect=ConfigurationError)


def test_infinite_sizes_are_refused(golden: dict[str, Any]) -> None:
    for path in (("chunker", "min"), ("chunker", "avg"), ("chunker", "max"), ("pack_size",)):
        data = edited(golden, path, 0).replace(b": 0", b": Infinity", 1)
        assert b"Infinity" in data
        refused(config_format.decode, data, expect=ConfigurationError)


def test_oversized_config_is_refused_before_parsing() -> None:
    err = refused(config_format.decode, b" " * (config_format.MAX_SIZE + 1), expect=ConfigurationError)
    assert "too large" in str(err)


def test_truncations_are_refused(vectors: dict[str, Any]) -> None:
    data = vectors["config"].encode()
    assert data.endswith(b"}\n")
    for length in range(len(data) - 1):  # dropping only the final newline leaves a valid document
        refused(config_format.decode, data[:length], expect=ConfigurationError)


def test_every_bit_flip_is_refused_or_yields_a_checked_config(vectors: dict[str, Any]) -> None:
    data = vectors["config"].encode()
    original = config_format.decode(data)
    changed = 0
    for offset in range(len(data)):
        for bit in range(8):
            tampered = bytearray(data)
            tampered[offset] ^= 1 << bit
            try:
                decoded = config_format.decode(bytes(tampered))
            except ConfigurationError:
                continue
            # Whatever got through is a config this mlvault can run with.
            assert decoded.chunker.check() is decoded.chunker
            assert 1 << 20 <= decoded.pack_size <= 1 << 30
            assert decoded.compression in ("zstd", "none")
            changed += decoded != original
    assert changed > 0  # plaintext: edits within range are possible, which is why nothing secret lives here
