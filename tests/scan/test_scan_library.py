"""vault.scan on the generated corpus: every malicious file dangerous, no clean file flagged, formats
detected from content, broken or hostile input unscannable (scan) or refused (inspect)."""

from __future__ import annotations

import pickle
import struct
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
import scancorpus as corpus

from vault.errors import UsageError
from vault.scan import ScanLimits, Verdict
from vault.scan.inspect import inspect_path
from vault.scan.scanner import scan_path

EXPECTED_IMPORT = {
    "os_system.pkl": ("posix", "system"),
    "popen.pkl": ("subprocess", "Popen"),
    "eval.pkl": ("__builtin__", "eval"),
    "exec.pkl": ("builtins", "exec"),
    "runpy.pkl": ("runpy", "_run_code"),
    "import_module.pkl": ("importlib", "import_module"),
    "getattr_chain.pkl": ("builtins", "getattr"),
    "nested_reduce.pkl": ("posix", "system"),
    "protocol0.pkl": ("posix", "system"),
    "protocol5.pkl": ("posix", "system"),
    "torch_model.pt": ("posix", "system"),
    "model.joblib": ("posix", "system"),
    "objects.npy": ("posix", "system"),
    "model.safetensors": ("posix", "system"),
}
EXPECTED_FORMAT = {"torch_model.pt": "pytorch-zip", "model.joblib": "joblib", "objects.npy": "numpy-object"}


def test_the_corpus_covers_every_case_the_issue_lists() -> None:
    assert set(corpus.malicious()) == set(EXPECTED_IMPORT)


def one(tmp_path: Path, name: str, data: bytes, strict: bool = True):  # type: ignore[no-untyped-def]
    (tmp_path / name).write_bytes(data)
    report = scan_path(tmp_path / name, strict=strict)
    assert len(report.files) == 1
    return report.files[0]


@pytest.mark.parametrize("name", sorted(corpus.malicious()))
def test_every_malicious_file_is_dangerous_and_names_its_import(tmp_path: Path, name: str) -> None:
    result = one(tmp_path, name, corpus.malicious()[name])
    assert result.verdict is Verdict.DANGEROUS
    dangerous = {(f.module, f.name) for f in result.findings if f.safety.value == "dangerous"}
    assert EXPECTED_IMPORT[name] in dangerous
    assert result.format == EXPECTED_FORMAT.get(name, "pickle")


def test_no_clean_file_is_flagged(tmp_path: Path) -> None:
    report = scan_path(corpus.write(tmp_path / "clean", corpus.clean()))
    verdicts = {f.path: (f.format, f.verdict) for f in report.files}
    assert verdicts == {
        "README.md": ("text", Verdict.NOT_APPLICABLE),
        "config.json": ("text", Verdict.NOT_APPLICABLE),
        "floats.npy": ("numpy", Verdict.NOT_APPLICABLE),
        "model.gguf": ("gguf", Verdict.NOT_APPLICABLE),
        "model.safetensors": ("safetensors", Verdict.NOT_APPLICABLE),
        "plain.pkl": ("pickle", Verdict.CLEAN),
        "pytorch_model.bin": ("pytorch-zip", Verdict.CLEAN),
        "state_dict.pkl": ("pickle", Verdict.CLEAN),
    }
    assert report.verdict is Verdict.CLEAN and not report.dangerous
    state = next(f for f in report.files if f.path == "state_dict.pkl")
    assert {(f.module, f.name) for f in state.findings} == {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch", "FloatStorage"),
    }


def test_a_directory_with_one_bad_file_is_dangerous_overall(tmp_path: Path) -> None:
    files = corpus.clean() | {"sub/evil.bin": corpus.malicious()["os_system.pkl"]}
    (tmp_path / "m" / "sub").mkdir(parents=True)
    report = scan_path(corpus.write(tmp_path / "m", files))
    assert report.verdict is Verdict.DANGEROUS
    assert [f.path for f in report.dangerous] == ["sub/evil.bin"]
    assert report.scanner == "picklescan" and report.scanner_version.startswith("1.")


def test_legacy_torch_checkpoint_is_recognised_and_clean(tmp_path: Path) -> None:
    legacy = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    legacy += pickle.dumps({"protocol_version": 1001}, protocol=2) + corpus.state_dict_pickle(["w"])
    legacy += pickle.dumps(["0"], protocol=2)  # the storage keys: the fifth and last pickle
    # raw storage bytes follow the pickles, and may disassemble into made-up globals
    legacy += b"cstorage bytes\nthat look like a GLOBAL\n" + struct.pack("<6f", *range(6))
    result = one(tmp_path, "old.pt", legacy)
    assert (result.format, result.verdict) == ("pytorch-legacy", Verdict.CLEAN)
    evil = one(
        tmp_path,
        "old-evil.pt",
        legacy.replace(corpus.state_dict_pickle(["w"]), corpus.malicious()["eval.pkl"]),
    )
    assert (evil.format, evil.verdict) == ("pytorch-legacy", Verdict.DANGEROUS)


def test_lenient_mode_rates_globals_on_neither_list_suspicious(tmp_path: Path) -> None:
    result = one(tmp_path, "m.pkl", corpus.malicious()["import_module.pkl"], strict=False)
    assert result.verdict is Verdict.SUSPICIOUS
    assert one(tmp_path, "n.pkl", corpus.malicious()["popen.pkl"], strict=False).verdict is Verdict.DANGEROUS


def test_what_cannot_be_parsed_is_unscannable_never_clean(tmp_path: Path) -> None:
    truncated = pickle.dumps({"a": list(range(100))}, protocol=4)[:40]
    assert one(tmp_path, "t.pkl", truncated).verdict is Verdict.UNSCANNABLE
    assert one(tmp_path, "blob.bin", bytes(range(1, 256)) * 4).verdict is Verdict.UNSCANNABLE
    assert one(tmp_path, "bad.npy", b"\x93NUMPY\x01\x00\xff\xffgarbage").verdict is Verdict.UNSCANNABLE
    assert one(tmp_path, "bad.zip", b"PK\x03\x04" + b"\x00" * 40).verdict is Verdict.UNSCANNABLE
    broken = corpus.raw_safetensors(b'{"w": {"dtype": "F32"')
    assert one(tmp_path, "w.safetensors", broken).verdict is Verdict.UNSCANNABLE


def test_a_broken_tail_does_not_hide_a_payload(tmp_path: Path) -> None:
    payload = corpus.malicious()["protocol0.pkl"]
    result = one(tmp_path, "p0.txt", payload[: payload.rindex(b".")] + b"\xff\xfe junk")
    assert result.verdict is Verdict.DANGEROUS


def test_text_that_begins_like_a_global_opcode_is_text(tmp_path: Path) -> None:
    result = one(tmp_path, "notes.txt", b"config:\nvalue\nmore text, not a pickle\n")
    assert (result.format, result.verdict) == ("text", Verdict.NOT_APPLICABLE)


def test_a_hostile_length_in_a_pickle_is_bounded(tmp_path: Path) -> None:
    # BINBYTES8 claiming 2^60 bytes: the reader clamps to the file, the pickle is incomplete.
    hostile = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 60) + b"abc"
    assert one(tmp_path, "h.pkl", hostile).verdict is Verdict.UNSCANNABLE
    capped = one(tmp_path, "big.pkl", pickle.dumps(b"x" * 4096, protocol=4))
    assert capped.verdict is Verdict.CLEAN
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "big.pkl").write_bytes(pickle.dumps(b"x" * 4096, protocol=4))
    small = scan_path(tmp_path / "c", ScanLimits(max_pickle_bytes=1024))
    assert small.files[0].verdict is Verdict.UNSCANNABLE


def test_raw_storage_bytes_that_look_like_a_pickle_are_not_flagged(tmp_path: Path) -> None:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", corpus.state_dict_pickle(["w"]))
        zf.writestr("archive/data/0", b"\x80\x02" + bytes(range(200, 256)) * 3)
    result = one(tmp_path, "m.pt", buf.getvalue())
    assert (result.format, result.verdict) == ("pytorch-zip", Verdict.CLEAN)


def test_npz_with_an_object_array_is_dangerous(tmp_path: Path) -> None:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.npy", corpus.clean()["floats.npy"])
        zf.writestr("obj.npy", corpus.malicious()["objects.npy"])
    result = one(tmp_path, "arrays.npz", buf.getvalue())
    assert (result.format, result.verdict) == ("npz", Verdict.DANGEROUS)


# -- inspect ------------------------------------------------------------------------------------


def test_inspect_summarizes_safetensors_gguf_numpy_and_pickles(tmp_path: Path) -> None:
    corpus.write(tmp_path / "m", corpus.clean())
    info = {i["path"]: i for i in inspect_path(tmp_path / "m")}
    st = info["model.safetensors"]["safetensors"]
    assert st["parameter_count"] == 9 and st["tensor_count"] == 2
    assert st["dtypes"] == {"F32": 1, "F16": 1} and st["metadata"] == {"format": "pt"}
    assert st["tensors"][1] == {"name": "conv.weight", "dtype": "F32", "shape": [2, 3], "parameters": 6}
    gg = info["model.gguf"]["gguf"]
    assert (gg["architecture"], gg["tensor_count"], gg["parameter_count"]) == ("llama", 2, 40)
    assert gg["quantization_types"] == {"Q4_0": 1, "F32": 1}
    assert info["floats.npy"]["numpy"] == {
        "dtype": "<f4",
        "shape": [2, 2],
        "fortran_order": False,
        "objects": False,
    }
    assert {i["name"] for i in info["state_dict.pkl"]["imports"]} == {
        "OrderedDict",
        "_rebuild_tensor_v2",
        "FloatStorage",
    }
    assert info["pytorch_model.bin"]["archive"]["entry_count"] == 4
    assert {i["path"]: (i["format"], i["verdict"]) for i in info.values() if "verdict" in i} == {
        "README.md": ("text", "not-applicable"),
        "config.json": ("text", "not-applicable"),
        "floats.npy": ("numpy", "not-applicable"),
        "plain.pkl": ("pickle", "clean"),
        "pytorch_model.bin": ("pytorch-zip", "clean"),
        "state_dict.pkl": ("pickle", "clean"),
    }


HOSTILE = {
    "huge-length": (struct.pack("<Q", 1 << 60) + b"{}", "exceeds the cap"),
    "past-the-end": (corpus.raw_safetensors(b"{}")[:8].replace(b"\x02", b"\x40") + b"{}", "past the end"),
    "bad-json": (corpus.raw_safetensors(b"{not json}"), "not valid JSON"),
    "overlap": (
        corpus.raw_safetensors(
            b'{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},'
            b' "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}',
            b"\x00" * 6,
        ),
        "overlap",
    ),
    "outside": (
        corpus.raw_safetensors(b'{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}', b"\x00"),
        "outside the data section",
    ),
    "gguf-counts": (b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0), "over the caps"),
    "gguf-string": (b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1 << 60), "exceeds the cap"),
    "npy-header": (b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 31), "exceeds the cap"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_inspect_refuses_hostile_headers_with_one_line(tmp_path: Path, case: str) -> None:
    data, words = HOSTILE[case]
    (tmp_path / "x.bin").write_bytes(data)
    with pytest.raises(UsageError) as caught:
        inspect_path(tmp_path / "x.bin")
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("x.bin: ")


def test_the_push_gate_refuses_dangerous_content_unless_allowed(tmp_path: Path) -> None:
    from vault.errors import UnsafeContentError
    from vault.scan.gate import scan_before_push

    corpus.write(tmp_path / "m", corpus.clean() | {"evil.bin": corpus.malicious()["runpy.pkl"]})
    with pytest.raises(UnsafeContentError) as caught:
        scan_before_push(tmp_path / "m")
    assert caught.value.exit_code == 18
    assert "evil.bin (pickle) imports runpy._run_code" in str(caught.value)
    allowed = scan_before_push(tmp_path / "m", allow_unsafe=True)
    assert [f.path for f in allowed.dangerous] == ["evil.bin"]
    assert scan_before_push(tmp_path / "m" / "model.safetensors").verdict is Verdict.NOT_APPLICABLE


def test_a_pickle_with_more_opcodes_than_the_cap_is_unscannable(tmp_path: Path) -> None:
    (tmp_path / "ops.pkl").write_bytes(pickle.dumps(list(range(5000)), protocol=4))
    result = scan_path(tmp_path / "ops.pkl", ScanLimits(max_pickle_ops=1000)).files[0]
    assert result.verdict is Verdict.UNSCANNABLE and "more than 1,000 pickle opcodes" in (result.note or "")
    assert scan_path(tmp_path / "ops.pkl").files[0].verdict is Verdict.CLEAN


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x04K\x01K\x02\x93\xff\xfe",  # STACK_GLOBAL over non-strings ("unknown"), then garbage
        b"\x80\x02cfoo\nbar\n\xff\xfe",  # a made-up GLOBAL, then garbage
        b"\x80\x03csubprocess\nPopen\n\xff",  # names a deny-listed global: still dangerous
    ],
)
def test_random_bytes_that_begin_like_a_pickle_are_unscannable_not_dangerous(
    tmp_path: Path, data: bytes
) -> None:
    result = one(tmp_path, "sample.bin", data)
    expected = Verdict.DANGEROUS if b"Popen" in data else Verdict.UNSCANNABLE
    assert result.verdict is expected
