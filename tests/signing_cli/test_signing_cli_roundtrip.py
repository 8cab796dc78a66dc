"""Keys, sign → trust → verify → pull → export, and the offline deploy-host check.

The offline check runs in a subprocess with an empty environment (no vault, HOME in
tmp_path) to prove it needs nothing but the files, and without importing SQLAlchemy or boto3.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clihelpers import ARTIFACT, FAST_KDF, Keys, Run, fails, ok

from vault.signing.keys import KEY_FILE_MAGIC


def _mlvault_command() -> list[str]:
    script = Path(sys.executable).with_name("mlvault")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from mlvault_cli.main import main; main()"]


def test_key_new_export_list(run: Run, vault_ready: str, clean_environment: Path) -> None:
    enc = ok(run("key", "new", "release", *FAST_KDF, env={"MLVAULT_KEY_PASSPHRASE": "key secret"}))
    assert "encrypted with Argon2id" in enc.stdout
    ok(run("key", "new", "ci", "--unencrypted"))
    key_dir = clean_environment / "keys"
    release = (key_dir / "release.key").read_bytes()
    assert release.startswith(KEY_FILE_MAGIC)
    assert (key_dir / "ci.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    for name in ("release.key", "ci.key"):
        assert stat.S_IMODE((key_dir / name).stat().st_mode) == 0o600

    listed = json.loads(ok(run("key", "list", "--json")).stdout)
    assert [(k["name"], k["encrypted"]) for k in listed] == [("ci", False), ("release", True)]
    exported = ok(run("key", "export", "release", "--public")).stdout
    assert exported.startswith("-----BEGIN PUBLIC KEY-----")

    fails(run("key", "export", "release"), 2, "--public")
    fails(run("key", "new", "ci", "--unencrypted"), 6, "already exists")
    fails(run("key", "new", "../escape", "--unencrypted"), 2, "invalid key name")
    # an encrypted key needs its passphrase, and a wrong one is refused
    fails(run("sign", vault_ready, "--key", "release"), 4, "MLVAULT_KEY_PASSPHRASE")
    fails(
        run("sign", vault_ready, "--key", "release", env={"MLVAULT_KEY_PASSPHRASE": "wrong"}),
        4,
        "wrong passphrase",
    )
    ok(run("sign", vault_ready, "--key", "release", env={"MLVAULT_KEY_PASSPHRASE": "key secret"}))
    fails(run("sign", vault_ready, "--key", "nosuchkey"), 3, "mlvault key new nosuchkey")
    fails(run("sign", vault_ready), 2, "exactly one of --key")


def test_sign_trust_verify_pull_export(run: Run, vault_ready: str, keys: Keys, tmp_path: Path) -> None:
    signed = ok(run("sign", vault_ready, "--key", "signer", "--signer-name", "release-bot", "--json"))
    result = json.loads(signed.stdout)
    assert result["signer_fingerprint"] == keys.fingerprint("signer")
    assert result["signer_name"] == "release-bot" and result["files"] == 5

    fails(run("verify", vault_ready), 13, "no trust policy")
    added = ok(run("trust", "add", "team/*", "--key", str(keys.pub("signer")), "--admin-key", "admin"))
    assert "pinned trust-policy admin key" in added.stderr
    shown = json.loads(ok(run("trust", "show", "--json")).stdout)
    assert shown["serial"] == 1 and shown["admin_fingerprint"] == keys.fingerprint("admin")
    assert shown["rules"] == [
        {"namespace": "team/*", "threshold": 1, "keys": [keys.fingerprint("signer")], "old_syntax": False}
    ]

    report = json.loads(ok(run("verify", vault_ready, "--json")).stdout)
    assert report["trusted_signers"] == [keys.fingerprint("signer")] and report["rule"] == "team/*"

    out = tmp_path / "out"
    pulled = ok(run("pull", vault_ready, str(out)))
    assert "signatures: 1 trusted signature(s)" in pulled.stderr
    assert (out / "a" / "b").read_bytes() == b"nested under a\n"

    sig = tmp_path / "resnet.sig"
    ok(run("signature", "export", vault_ready, "-o", str(sig)))
    fails(run("signature", "export", vault_ready, "-o", str(sig)), 6, "already exists")
    offline = json.loads(
        ok(
            run("verify", str(out), "--signature", str(sig), "--key", str(keys.pub("signer")), "--json")
        ).stdout
    )
    assert offline["claims"]["artifact"] == ARTIFACT and offline["claims"]["version"] == 1
    assert offline["claims"]["signer"] == "release-bot"

    # two signers → two rows; export must then be told which one
    ok(run("sign", vault_ready, "--key", "second"))
    fails(run("signature", "export", vault_ready, "-o", "-"), 2, "--signer")
    second = ok(
        run("signature", "export", vault_ready, "-o", "-", "--signer", keys.fingerprint("second")[:12])
    )
    assert json.loads(second.stdout)["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture
def deployed(run: Run, vault_ready: str, keys: Keys, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A pulled directory, its exported signature and the signer's public key."""
    ok(run("sign", vault_ready, "--key", "signer"))
    out = tmp_path / "deploy" / "resnet"
    out.parent.mkdir()
    ok(run("pull", vault_ready, str(out)))
    sig = tmp_path / "deploy" / "resnet.sig"
    ok(run("signature", "export", vault_ready, "-o", str(sig)))
    return out, sig, keys.pub("signer")


_PROBE = """
import json, sys
from mlvault_cli.main import main
HEAVY = ("sqlalchemy", "boto3", "botocore", "alembic", "vault.service", "vault.catalog")
sys.argv = ["mlvault", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = [m for m in HEAVY if m in sys.modules]
sys.stderr.write("PROBE " + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def test_offline_verify_needs_no_vault_nor_environment(
    deployed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    out, sig, pub = deployed
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    args = ["verify", str(out), "--signature", str(sig), "--key", str(pub)]
    done = subprocess.run([*_mlvault_command(), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "5 file(s) match the signature" in done.stdout and ARTIFACT in done.stdout

    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    line = next(ln for ln in probe.stderr.splitlines() if ln.startswith("PROBE "))
    assert json.loads(line[len("PROBE ") :]) == {"code": 0, "heavy": []}

    (out / "config.json").write_text('{"depth": 51}\n')
    tampered = subprocess.run(
        [*_mlvault_command(), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert tampered.returncode == 14
    assert "config.json" in tampered.stderr and not os.listdir(home)


def test_exported_bundle_verifies_with_model_signing(deployed: tuple[Path, Path, Path]) -> None:
    model_signing: Any = pytest.importorskip("model_signing")
    out, sig, pub = deployed
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(out, sig)


def test_single_file_version_round_trip(
    run: Run, vault_ready: str, keys: Keys, model_dir: Path, tmp_path: Path
) -> None:
    ok(run("push", str(model_dir / "weights" / "model.safetensors"), "team/weights"))
    ok(run("sign", "team/weights@v1", "--key", "signer"))
    ok(run("trust", "add", "team/*", "--key", str(keys.pub("signer")), "--admin-key", "admin"))
    target = tmp_path / "model.safetensors"
    ok(run("pull", "team/weights@v1", str(target)))
    sig = tmp_path / "weights.sig"
    ok(run("signature", "export", "team/weights@v1", "-o", str(sig)))
    ok(run("verify", str(target), "--signature", str(sig), "--key", str(keys.pub("signer"))))
    fails(
        run("verify", str(tmp_path), "--signature", str(sig), "--key", str(keys.pub("signer"))),
        14,
        "single file",
    )
    model_signing: Any = pytest.importorskip("model_signing")
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=keys.pub("signer")).verify(
        target, sig
    )


def test_model_signing_bundle_verifies_offline_with_mlvault(
    run: Run, keys: Keys, clean_environment: Path, model_dir: Path, tmp_path: Path
) -> None:
    model_signing: Any = pytest.importorskip("model_signing")
    sig = tmp_path / "theirs.sig"
    private = clean_environment / "keys" / "signer.key"  # `key new --unencrypted` writes PKCS#8 PEM
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private).sign(model_dir, sig)
    ok(run("verify", str(model_dir), "--signature", str(sig), "--key", str(keys.pub("signer"))))
    fails(run("verify", str(model_dir), "--signature", str(sig), "--key", str(keys.pub("other"))), 12)
