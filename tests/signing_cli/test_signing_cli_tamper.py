"""Offline verification of a pulled version refuses every tampering, each with its own exit code.

11 malformed bundle / wrong media or predicate type, 12 signature invalid (edited or re-encoded
payload, swapped signature, another key), 14 content mismatch (changed byte, renamed, added or
removed file).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import Keys, Run, fails, ok

from vault.signing.keys import load_private_key
from vault.signing.oms import DSSE_PAYLOAD_TYPE, Bundle, encode_bundle, pae
from vault.signing.signers import LocalSigner


@pytest.fixture
def deployed(run: Run, vault_ready: str, keys: Keys, tmp_path: Path) -> tuple[Path, Path]:
    """A pulled directory and its exported signature (made with key ``signer``)."""
    ok(run("sign", vault_ready, "--key", "signer"))
    out = tmp_path / "out"
    ok(run("pull", vault_ready, str(out)))
    sig = tmp_path / "resnet.sig"
    ok(run("signature", "export", vault_ready, "-o", str(sig)))
    return out, sig


def _verify(run: Run, out: Path, sig: Path, keys: Keys, *extra: str, key: str = "signer") -> Any:
    return run("verify", str(out), "--signature", str(sig), "--key", str(keys.pub(key)), *extra)


def _rewrite(sig: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(sig.read_bytes())
    edit(doc)
    sig.write_text(json.dumps(doc))


def _payload(doc: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return payload


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def _set_payload(doc: dict[str, Any], payload: bytes) -> None:
    doc["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()


@pytest.mark.parametrize(
    ("tamper", "fragment"),
    [
        (lambda out: _flip_byte(out / "weights" / "model.safetensors", 1000), "weights/model.safetensors"),
        (lambda out: (out / "a.b").rename(out / "a.c"), "'a.b' is signed but missing"),
        (lambda out: (out / "extra.bin").write_bytes(b"x"), "'extra.bin' is not covered"),
        (lambda out: (out / "a" / "b").unlink(), "'a/b' is signed but missing"),
        (lambda out: (out / "weights" / "empty.bin").write_bytes(b"\0"), "weights/empty.bin"),
    ],
    ids=["changed-byte", "renamed", "added", "removed", "empty-file-grew"],
)
def test_content_tampering_is_refused(
    run: Run, deployed: tuple[Path, Path], keys: Keys, tamper: Callable[[Path], object], fragment: str
) -> None:
    out, sig = deployed
    ok(_verify(run, out, sig, keys))
    tamper(out)
    fails(_verify(run, out, sig, keys), 14, fragment)


def test_extra_files_allowed_only_on_request(run: Run, deployed: tuple[Path, Path], keys: Keys) -> None:
    out, sig = deployed
    (out / "README.md").write_text("added on the deploy host\n")
    fails(_verify(run, out, sig, keys), 14, "README.md")
    ok(_verify(run, out, sig, keys, "--allow-extra-files"))
    (out / "a.b").unlink()
    fails(_verify(run, out, sig, keys, "--allow-extra-files"), 14, "missing")


def test_edited_payload_is_refused(run: Run, deployed: tuple[Path, Path], keys: Keys) -> None:
    out, sig = deployed
    (out / "config.json").write_text('{"depth": 152}\n')

    def point_at_new_content(doc: dict[str, Any]) -> None:
        import hashlib

        payload = _payload(doc)
        for resource in payload["predicate"]["resources"]:
            if resource["name"] == "config.json":
                resource["digest"] = hashlib.sha256((out / "config.json").read_bytes()).hexdigest()
        _set_payload(doc, json.dumps(payload).encode())

    _rewrite(sig, point_at_new_content)
    fails(_verify(run, out, sig, keys), 12, "does not verify")


def test_reencoded_payload_is_refused(run: Run, deployed: tuple[Path, Path], keys: Keys) -> None:
    out, sig = deployed
    _rewrite(sig, lambda doc: _set_payload(doc, json.dumps(_payload(doc), indent=1).encode()))
    fails(_verify(run, out, sig, keys), 12, "does not verify")


def test_swapped_signature_is_refused(
    run: Run, deployed: tuple[Path, Path], keys: Keys, model_dir: Path, tmp_path: Path
) -> None:
    out, sig = deployed
    (model_dir / "config.json").write_text('{"depth": 18}\n')
    ok(run("push", str(model_dir), "team/vision/resnet"))
    ok(run("sign", "team/vision/resnet@v2", "--key", "signer"))
    v2 = tmp_path / "v2.sig"
    ok(run("signature", "export", "team/vision/resnet@v2", "-o", str(v2)))
    donor = json.loads(v2.read_bytes())["dsseEnvelope"]["signatures"]

    _rewrite(sig, lambda doc: doc["dsseEnvelope"].__setitem__("signatures", donor))
    fails(_verify(run, out, sig, keys), 12, "does not verify")
    # and v2's whole, valid bundle does not vouch for v1's files either
    fails(_verify(run, out, v2, keys), 14, "config.json")


def test_other_key_is_refused(run: Run, deployed: tuple[Path, Path], keys: Keys) -> None:
    out, sig = deployed
    fails(_verify(run, out, sig, keys, key="other"), 12, "different key")
    # a bundle without a key hint is tried against every given key, and still fails
    _rewrite(sig, lambda doc: doc["verificationMaterial"].__setitem__("publicKey", {}))
    fails(_verify(run, out, sig, keys, key="other"), 12, "does not verify")
    ok(_verify(run, out, sig, keys))


def test_malformed_bundles_are_refused(
    run: Run, deployed: tuple[Path, Path], keys: Keys, tmp_path: Path
) -> None:
    out, sig = deployed
    good = sig.read_bytes()
    sig.write_bytes(good[: len(good) // 2])
    fails(_verify(run, out, sig, keys), 11, "not valid JSON")
    sig.write_bytes(good)
    _rewrite(sig, lambda doc: doc.__setitem__("mediaType", "application/vnd.dev.sigstore.bundle.v0.2+json"))
    fails(_verify(run, out, sig, keys), 11, "media type")


def test_wrong_predicate_type_is_refused(
    run: Run, deployed: tuple[Path, Path], keys: Keys, clean_environment: Path
) -> None:
    out, sig = deployed
    signer = LocalSigner(load_private_key(clean_environment / "keys" / "signer.key", None))
    payload = _payload(json.loads(sig.read_bytes()))
    payload["predicateType"] = "https://slsa.dev/provenance/v1"
    raw = json.dumps(payload).encode()
    bundle = Bundle(raw, DSSE_PAYLOAD_TYPE, signer.sign(pae(DSSE_PAYLOAD_TYPE, raw)), signer.key_hint())
    sig.write_bytes(encode_bundle(bundle))
    fails(_verify(run, out, sig, keys), 11, "predicate type")


def test_huge_bundle_is_refused_quickly(
    run: Run, deployed: tuple[Path, Path], keys: Keys, tmp_path: Path
) -> None:
    out, _ = deployed
    huge = tmp_path / "huge.sig"
    subprocess.run(["truncate", "-s", "1G", str(huge)], check=True)
    assert os.stat(huge).st_size == 1 << 30
    started = time.monotonic()
    fails(_verify(run, out, huge, keys), 11, "over the")
    assert time.monotonic() - started < 2.0
