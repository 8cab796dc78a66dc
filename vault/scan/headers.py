"""Headers of the formats that cannot carry code, read with caps and checked before trusting them.

* safetensors: an 8-byte little-endian header length, a JSON object of tensors (dtype, shape,
  ``data_offsets`` into the data section) and an optional ``__metadata__`` map of strings. The
  length is checked against the cap and the file size before a byte of it is read; offsets must lie
  inside the data section, match dtype × shape, and not overlap.
* GGUF (v2, v3): magic, version, tensor and key/value counts, typed key/values, tensor infos (name,
  dimensions, ggml type, offset). Every count, string and array length is capped, and the total read
  is bounded by a budget; array contents are skipped, never held.

A header that breaks a rule raises :class:`HeaderError` with a one-line message.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections import Counter
from typing import IO, Any

from .model import ScanLimits

SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip

GGML_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
    18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8",
    25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
}  # fmt: skip

# GGUF value types: fixed-size scalars (struct code), 8 = string, 9 = array.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


class HeaderError(ValueError):
    """A header that is malformed or breaks a cap; ``str()`` is one line."""


def read_safetensors_header(stream: IO[bytes], size: int, limits: ScanLimits) -> dict[str, Any]:
    """Tensors (name, dtype, shape, parameters), their total, dtype counts and metadata."""
    prefix = stream.read(8)
    if len(prefix) < 8:
        raise HeaderError("safetensors file shorter than its 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > limits.max_safetensors_header:
        cap = limits.max_safetensors_header
        raise HeaderError(f"safetensors header length {length} exceeds the cap of {cap}")
    if length > size - 8:
        raise HeaderError(f"safetensors header length {length} runs past the end of the file ({size} bytes)")
    try:
        header = json.loads(stream.read(length))
    except (ValueError, RecursionError) as exc:
        raise HeaderError("safetensors header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise HeaderError("safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise HeaderError("safetensors __metadata__ is not a map of strings")
    data_size = size - 8 - length
    tensors: list[dict[str, Any]] = []
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        tensors.append(_safetensors_tensor(name, entry, data_size, spans))
    spans.sort()
    for (_b1, e1, n1), (b2, _e2, n2) in itertools.pairwise(spans):
        if b2 < e1:
            raise HeaderError(f"safetensors tensors {n1!r} and {n2!r} overlap")
    return {
        "tensors": sorted(tensors, key=lambda t: t["name"]),
        "tensor_count": len(tensors),
        "parameter_count": sum(t["parameters"] for t in tensors),
        "dtypes": dict(Counter(t["dtype"] for t in tensors)),
        "metadata": metadata,
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _safetensors_tensor(
    name: str, entry: Any, data_size: int, spans: list[tuple[int, int, str]]
) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise HeaderError(f"safetensors entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPE_BYTES:
        raise HeaderError(f"safetensors tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise HeaderError(f"safetensors tensor {name!r} has a bad shape")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        raise HeaderError(f"safetensors tensor {name!r} has bad data_offsets")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise HeaderError(f"safetensors tensor {name!r} has offsets outside the data section")
    numel = math.prod(shape)
    if numel * SAFETENSORS_DTYPE_BYTES[dtype] != end - begin:
        raise HeaderError(f"safetensors tensor {name!r}: {end - begin} bytes do not hold {dtype} {shape}")
    spans.append((begin, end, name))
    return {"name": name, "dtype": dtype, "shape": shape, "parameters": numel}


class _Budget:
    """Reads from a stream, refusing once more than ``limit`` bytes were asked for in total."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.left = stream, limit

    def read(self, n: int) -> bytes:
        if n > self.left:
            raise HeaderError("GGUF header is larger than the cap on what inspect reads")
        self.left -= n
        data = self.stream.read(n)
        if len(data) != n:
            raise HeaderError("GGUF header is truncated")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]


def _gguf_string(budget: _Budget, limits: ScanLimits) -> str:
    length = budget.unpack("Q")
    if length > limits.max_gguf_string:
        raise HeaderError(f"GGUF string of {length} bytes exceeds the cap of {limits.max_gguf_string}")
    return budget.read(length).decode("utf-8", errors="replace")


def _gguf_value(budget: _Budget, vtype: int, limits: ScanLimits, depth: int = 0) -> Any:
    if vtype in _GGUF_SCALARS:
        return budget.unpack(_GGUF_SCALARS[vtype])
    if vtype == _GGUF_STRING:
        return _gguf_string(budget, limits)
    if vtype == _GGUF_ARRAY and depth == 0:
        item_type, count = budget.unpack("I"), budget.unpack("Q")
        if count > limits.max_gguf_array:
            raise HeaderError(f"GGUF array of {count} items exceeds the cap of {limits.max_gguf_array}")
        for _ in range(count):  # skipped, not kept: tokenizer vocabularies are large
            _gguf_value(budget, item_type, limits, depth + 1)
        return f"<array of {count}>"
    raise HeaderError(f"GGUF value type {vtype} is not known")


def read_gguf_header(stream: IO[bytes], limits: ScanLimits) -> dict[str, Any]:
    """Version, architecture, name, tensor count, parameter count and quantization types."""
    budget = _Budget(stream, limits.max_gguf_header)
    if budget.read(4) != b"GGUF":
        raise HeaderError("not a GGUF file")
    version = budget.unpack("I")
    if version not in (2, 3):
        raise HeaderError(f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count, kv_count = budget.unpack("Q"), budget.unpack("Q")
    if tensor_count > limits.max_gguf_tensors or kv_count > limits.max_gguf_kvs:
        raise HeaderError(f"GGUF claims {tensor_count} tensors and {kv_count} keys, over the caps")
    kvs: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _gguf_string(budget, limits)
        kvs[key] = _gguf_value(budget, budget.unpack("I"), limits)
    types: Counter[str] = Counter()
    parameters = 0
    for _ in range(tensor_count):
        _gguf_string(budget, limits)
        n_dims = budget.unpack("I")
        if n_dims > 8:
            raise HeaderError(f"GGUF tensor with {n_dims} dimensions")
        parameters += math.prod(budget.unpack("Q") for _ in range(n_dims))
        ggml_type = budget.unpack("I")
        budget.unpack("Q")
        types[GGML_TYPES.get(ggml_type, f"type-{ggml_type}")] += 1
    return {
        "version": version,
        "architecture": kvs.get("general.architecture"),
        "name": kvs.get("general.name"),
        "tensor_count": tensor_count,
        "parameter_count": parameters,
        "quantization_types": dict(types),
        "metadata_keys": len(kvs),
    }
