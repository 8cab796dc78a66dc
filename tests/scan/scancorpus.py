"""The scanning corpus, generated (never committed as binaries).

Malicious files are made with ``pickle.dumps`` of objects whose ``__reduce__`` names a dangerous
callable (pickling never calls it) or assembled opcode by opcode where the globals must name modules
that are not installed (torch, joblib). Nothing here is ever unpickled.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import pickle
import runpy
import struct
import subprocess
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any


class Reduce:
    """Pickles as ``f(*args)``: the payload a malicious pickle carries."""

    def __init__(self, f: Any, *args: Any) -> None:
        self.f, self.args = f, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.f, self.args


# -- a tiny pickle assembler for globals of modules that are not installed ----------------------


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def ustr(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def small_int(n: int) -> bytes:
    return b"K" + bytes([n])


MARK, TUPLE, REDUCE, SETITEM, STOP = b"(", b"t", b"R", b"s", b"."
EMPTY_TUPLE, BINPERSID, FALSE = b")", b"Q", b"\x89"


def state_dict_pickle(names: list[str]) -> bytes:
    """What ``torch.save(model.state_dict())`` writes as data.pkl: only allow-listed globals."""
    out = b"\x80\x02" + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    for i, name in enumerate(names):
        storage = MARK + ustr("storage") + glob("torch", "FloatStorage") + ustr(str(i)) + ustr("cpu")
        storage += small_int(6) + TUPLE + BINPERSID
        args = storage + small_int(0) + MARK + small_int(2) + small_int(3) + TUPLE
        args += MARK + small_int(3) + small_int(1) + TUPLE + FALSE
        args += glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
        tensor = glob("torch._utils", "_rebuild_tensor_v2") + MARK + args + TUPLE + REDUCE
        out += ustr(name) + tensor + SETITEM
    return out + STOP


def torch_zip(pkl: bytes) -> bytes:
    """A PyTorch zip checkpoint (``archive/data.pkl`` plus raw storages), built by hand."""
    from io import BytesIO

    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/data/0", struct.pack("<6f", *range(6)))
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def npy(descr: str, shape: tuple[int, ...], body: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    total = 10 + len(header) + 1
    header += b" " * ((64 - total % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def safetensors(
    tensors: dict[str, tuple[str, list[int], int]], metadata: dict[str, str] | None = None
) -> bytes:
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\x00" * offset


def raw_safetensors(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


def gguf_string(s: str) -> bytes:
    return struct.pack("<Q", len(s.encode())) + s.encode()


def gguf(arch: str, tensors: list[tuple[str, list[int], int]]) -> bytes:
    """GGUF v3: kv ``general.architecture`` plus tensor infos; ``tensors`` are (name, dims, ggml type)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 2)
    out += gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string(arch)
    out += gguf_string("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32)
    for name, dims, ggml_type in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", ggml_type, 0)
    return out + b"\x00" * ((32 - len(out) % 32) % 32) + b"\x00" * 64


def _getattr_chain() -> Reduce:
    # getattr(getattr(dict(), "__class__"), "__base__") — the shape of a getattr gadget chain.
    return Reduce(getattr, Reduce(getattr, Reduce(dict), "__class__"), "__base__")


def malicious() -> dict[str, bytes]:
    """name → bytes; every one must be flagged dangerous."""
    system = Reduce(os.system, "echo pwned")
    joblib = b"\x80\x02}(" + ustr("model") + glob("posix", "system") + ustr("id") + b"\x85" + REDUCE
    joblib += ustr("array") + glob("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + b"\x81}b"
    joblib += b"u" + STOP + b"\x00\x01\x02\x03" * 16  # joblib writes raw array bytes after the pickle
    system_pickle = b"\x80\x02" + glob("posix", "system") + ustr("id") + b"\x85" + REDUCE + STOP
    return {
        "os_system.pkl": pickle.dumps(system, protocol=4),
        "popen.pkl": pickle.dumps(Reduce(subprocess.Popen, ["id"]), protocol=3),
        "eval.pkl": pickle.dumps(Reduce(builtins.eval, "1+1"), protocol=2),
        "exec.pkl": pickle.dumps(Reduce(builtins.exec, "import os"), protocol=4),
        "runpy.pkl": pickle.dumps(Reduce(runpy._run_code, "print(1)", {}), protocol=4),
        "import_module.pkl": pickle.dumps(Reduce(importlib.import_module, "os"), protocol=4),
        "getattr_chain.pkl": pickle.dumps(_getattr_chain(), protocol=4),
        "nested_reduce.pkl": pickle.dumps(OrderedDict(a=[{"deep": (1, system)}]), protocol=4),
        "protocol0.pkl": pickle.dumps(system, protocol=0),
        "protocol5.pkl": pickle.dumps({"w": system}, protocol=5),
        "torch_model.pt": torch_zip(system_pickle),
        "model.joblib": joblib,
        "objects.npy": npy("|O", (1,), pickle.dumps([system], protocol=3)),
        "model.safetensors": pickle.dumps(system, protocol=4),
    }


def clean() -> dict[str, bytes]:
    """name → bytes; none may be flagged."""
    names = ["conv.weight", "conv.bias"]
    return {
        "state_dict.pkl": state_dict_pickle(names),
        "pytorch_model.bin": torch_zip(state_dict_pickle(names)),
        "model.safetensors": safetensors(
            {"conv.weight": ("F32", [2, 3], 24), "conv.bias": ("F16", [3], 6)}, {"format": "pt"}
        ),
        "model.gguf": gguf("llama", [("token_embd.weight", [4, 8], 2), ("output.weight", [8], 0)]),
        "floats.npy": npy("<f4", (2, 2), struct.pack("<4f", 1, 2, 3, 4)),
        "config.json": json.dumps({"hidden_size": 8}).encode(),
        "README.md": b"# a model card\n",
        "plain.pkl": pickle.dumps({"lr": 0.1, "layers": [1, 2, 3]}, protocol=2),
    }


def write(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory
