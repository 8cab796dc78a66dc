"""The trust policy through the CLI: who may sign what, pull enforcement, and a hostile catalog.

The catalog-writer tests write rows with a plain SQLAlchemy engine on the vault's catalog —
exactly the access the threat model grants that attacker — and check that nothing they can
write makes ``verify`` or ``pull`` accept a version a trusted key did not sign.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from clihelpers import ARTIFACT, Keys, Run, fails, ok
from sqlalchemy import Engine, delete, func, select

from vault.catalog.schema import signatures, trust_policies, versions
from vault.catalog.signatures import SignatureCatalog
from vault.signing.hashing import FileDigest
from vault.signing.keys import generate_private_key, load_private_key
from vault.signing.oms import sign_files
from vault.signing.policy import TrustedKey, TrustPolicy, TrustRule, sign_policy
from vault.signing.signers import LocalSigner


def _trust(run: Run, keys: Keys, glob: str, *names: str, threshold: int | None = None) -> None:
    for name in names:
        extra = ["--threshold", str(threshold)] if threshold and name == names[-1] else []
        ok(run("trust", "add", glob, "--key", str(keys.pub(name)), "--admin-key", "admin", *extra))


def _nothing_written(dest: Path) -> None:
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if ".mlvault-" in p.name]


def test_untrusted_key_is_refused_and_pull_writes_nothing(
    run: Run, vault_ready: str, keys: Keys, tmp_path: Path
) -> None:
    _trust(run, keys, "team/*", "signer")
    ok(run("sign", vault_ready, "--key", "other"))
    fails(run("verify", vault_ready), 13, "signed only by keys outside the trust policy")
    dest = tmp_path / "out"
    fails(run("pull", vault_ready, str(dest)), 13, "outside the trust policy")
    _nothing_written(dest)
    ok(run("sign", vault_ready, "--key", "signer"))
    verified = ok(run("verify", vault_ready))
    assert "ignored: signature #1" in verified.stderr
    ok(run("pull", vault_ready, str(dest)))


def test_key_trusted_for_another_namespace_is_refused(run: Run, vault_ready: str, keys: Keys) -> None:
    _trust(run, keys, "team/*", "signer")
    _trust(run, keys, "lab/*", "other")
    ok(run("sign", vault_ready, "--key", "other"))
    fails(run("verify", vault_ready), 13, "not trusted for namespace 'team/*'", "trusted only for lab/*")


def test_most_specific_rule_wins(run: Run, vault_ready: str, keys: Keys) -> None:
    _trust(run, keys, "team/*", "signer")
    _trust(run, keys, "team/vision/*", "other")
    ok(run("sign", vault_ready, "--key", "signer"))
    fails(run("verify", vault_ready), 13, "'team/vision/*'")
    ok(run("sign", vault_ready, "--key", "other"))
    assert json.loads(ok(run("verify", vault_ready, "--json")).stdout)["rule"] == "team/vision/*"


def test_threshold_two_needs_two_distinct_trusted_signers(run: Run, vault_ready: str, keys: Keys) -> None:
    fails(
        run(
            "trust",
            "add",
            "team/*",
            "--key",
            str(keys.pub("signer")),
            "--admin-key",
            "admin",
            "--threshold",
            "2",
        ),
        2,
        "threshold 2",
    )
    _trust(run, keys, "team/*", "signer", "second", threshold=2)
    ok(run("sign", vault_ready, "--key", "signer"))
    ok(run("sign", vault_ready, "--key", "signer"))  # the same key twice is still one signer
    fails(run("verify", vault_ready), 13, "threshold 2 not met")
    ok(run("sign", vault_ready, "--key", "second"))
    report = json.loads(ok(run("verify", vault_ready, "--json")).stdout)
    assert sorted(report["trusted_signers"]) == sorted(
        [keys.fingerprint("signer"), keys.fingerprint("second")]
    )
    # removing a key below the threshold is refused; lowering the threshold first works
    fails(
        run("trust", "remove", "team/*", "--admin-key", "admin", "--fingerprint", keys.fingerprint("second")),
        2,
        "lower the threshold",
    )


def test_pull_enforces_the_policy_only_where_a_rule_applies(
    run: Run, vault_ready: str, keys: Keys, model_dir: Path, tmp_path: Path
) -> None:
    ok(run("pull", vault_ready, str(tmp_path / "no-policy")))  # no policy at all: nothing to enforce
    _trust(run, keys, "team/*", "signer")
    dest = tmp_path / "unsigned"
    fails(run("pull", vault_ready, str(dest)), 13, "has no signature", "mlvault sign")
    _nothing_written(dest)

    ok(run("push", str(model_dir), "lab/scratch"))
    outside = ok(run("pull", "lab/scratch", str(tmp_path / "lab")))  # no rule covers lab/: not required
    assert "signatures: not checked" in outside.stderr  # said, but not enforced

    skipped = ok(run("pull", vault_ready, str(tmp_path / "skipped"), "--no-verify"))
    assert skipped.stderr.startswith("warning: signature verification disabled")
    assert (tmp_path / "skipped" / "config.json").is_file()

    ok(run("trust", "remove", "team/*", "--admin-key", "admin"))
    ok(run("pull", vault_ready, str(tmp_path / "rule-removed")))


def test_policy_changes_need_the_pinned_admin_key(run: Run, vault_ready: str, keys: Keys) -> None:
    _trust(run, keys, "team/*", "signer")
    fails(
        run("trust", "add", "team/*", "--key", str(keys.pub("other")), "--admin-key", "other"),
        13,
        "not the pinned admin key",
    )
    assert json.loads(ok(run("trust", "show", "--json")).stdout)["serial"] == 1


def test_policy_signed_by_another_admin_is_refused_after_pinning(
    run: Run, vault_ready: str, keys: Keys, catalog_writer: SignatureCatalog
) -> None:
    _trust(run, keys, "team/*", "signer")
    ok(run("sign", vault_ready, "--key", "other"))
    rogue_admin = LocalSigner(generate_private_key())
    other = load_private_key(keys.pub("other").parent.parent / "config" / "keys" / "other.key", None)
    rogue = TrustPolicy((TrustRule("team/*", (TrustedKey.from_public_key(other.public_key()),)),), serial=2)
    catalog_writer.store_policy(2, sign_policy(rogue, rogue_admin), "mallory")
    fails(run("verify", vault_ready), 13, "trust policy is signed by an unpinned key")
    fails(run("pull", vault_ready, str(keys.pub("other").parent / "out")), 13, "unpinned key")
    fails(run("trust", "show"), 13, "unpinned key")


def test_catalog_rollback_of_the_policy_is_refused(
    run: Run, vault_ready: str, keys: Keys, catalog_engine: Engine
) -> None:
    _trust(run, keys, "team/*", "signer")
    _trust(run, keys, "team/*", "other")
    ok(run("sign", vault_ready, "--key", "other"))
    ok(run("verify", vault_ready))
    with catalog_engine.begin() as conn:  # roll back to serial 1, which does not trust "other"
        conn.execute(delete(trust_policies).where(trust_policies.c.serial == 2))
    fails(run("verify", vault_ready), 5, "older than serial 2")
    with catalog_engine.begin() as conn:
        conn.execute(delete(trust_policies))
    fails(run("verify", vault_ready), 5, "missing from the catalog")
    fails(run("pull", vault_ready, str(keys.pub("other").parent / "out")), 5, "rolled back")


def test_catalog_writer_cannot_forge_a_signature(
    run: Run,
    vault_ready: str,
    keys: Keys,
    clean_environment: Path,
    catalog_writer: SignatureCatalog,
    catalog_engine: Engine,
) -> None:
    _trust(run, keys, "team/*", "signer")
    ok(run("sign", vault_ready, "--key", "signer"))
    ok(run("verify", vault_ready))
    with catalog_engine.connect() as conn:
        version_id = conn.scalar(select(versions.c.id))
        honest = str(conn.scalar(select(signatures.c.bundle))).encode()
    with catalog_engine.begin() as conn:  # the attacker first removes the honest signature
        conn.execute(delete(signatures))
    assert version_id is not None
    signer_fp = keys.fingerprint("signer")

    # 1. a row signed with the attacker's own key, correctly bound to the version
    mallory = LocalSigner(generate_private_key())
    claims = json.loads(base64.b64decode(json.loads(honest)["dsseEnvelope"]["payload"]))["predicate"][
        "mlvault"
    ]
    files = _signed_files(honest)
    forged = sign_files(files, mallory, claims, model_name=ARTIFACT)
    catalog_writer.add_signature(version_id, signer_fp, forged, "mallory")  # lying fingerprint column
    fails(run("verify", vault_ready), 13, "outside the trust policy")

    # 2. the same, claiming the trusted key's hint
    doc = json.loads(forged)
    doc["verificationMaterial"]["publicKey"]["hint"] = json.loads(honest)["verificationMaterial"][
        "publicKey"
    ]["hint"]
    catalog_writer.add_signature(version_id, signer_fp, json.dumps(doc).encode(), "mallory")
    fails(run("verify", vault_ready), 12, "does not verify")

    # 3. the honest bundle with an edited payload
    with catalog_engine.begin() as conn:
        conn.execute(delete(signatures))
    doc = json.loads(honest)
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload["predicate"]["mlvault"]["version"] = 2
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    catalog_writer.add_signature(version_id, signer_fp, json.dumps(doc).encode(), "mallory")
    fails(run("verify", vault_ready), 12, "does not verify")

    # 4. a genuine bundle of another version, copied onto this one
    with catalog_engine.begin() as conn:
        conn.execute(delete(signatures))
    model = clean_environment.parent / "model"
    (model / "config.json").write_text('{"depth": 101}\n')
    ok(run("push", str(model), ARTIFACT))
    ok(run("sign", f"{ARTIFACT}@v2", "--key", "signer"))
    with catalog_engine.connect() as conn:
        genuine = str(conn.scalar(select(signatures.c.bundle))).encode()
    catalog_writer.add_signature(version_id, signer_fp, genuine, "mallory")
    fails(run("verify", vault_ready), 14, f"made for {ARTIFACT}@v2")
    fails(run("pull", vault_ready, str(clean_environment.parent / "out")), 14)

    # 5. the honest signature back: everything passes again, the junk rows are reported and ignored
    catalog_writer.add_signature(version_id, signer_fp, honest, "alice")
    verified = ok(run("verify", vault_ready))
    assert "ignored: signature #" in verified.stderr


def test_oversized_signature_row_is_not_loaded(
    run: Run, vault_ready: str, keys: Keys, catalog_engine: Engine
) -> None:
    _trust(run, keys, "team/*", "signer")
    with catalog_engine.connect() as conn:
        version_id = conn.scalar(select(versions.c.id))
    with catalog_engine.begin() as conn:
        conn.execute(
            signatures.insert().values(
                version_id=version_id,
                signer_fingerprint="0" * 64,
                bundle="x" * (17 * 1024 * 1024),
                created_by="mallory",
                created_at=func.current_timestamp(),
            )
        )
    fails(run("verify", vault_ready), 11, "over the size limit")


def _signed_files(bundle: bytes) -> list[FileDigest]:
    payload = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    return [FileDigest(r["name"], bytes.fromhex(r["digest"])) for r in payload["predicate"]["resources"]]


def test_a_stored_policy_with_an_old_glob_loads_and_tells_how_to_fix_it(
    run: Run, vault_ready: str, keys: Keys, catalog_writer: SignatureCatalog, tmp_path: Path
) -> None:
    """A rule signed before the pattern grammar ('*' mid-pattern) refuses what it covered (exit 8)."""
    _trust(run, keys, "lab/*", "signer")
    vault_id = json.loads(ok(run("trust", "show", "--json")).stdout)["vault_id"]
    admin = LocalSigner(
        load_private_key(keys.pub("admin").parent.parent / "config" / "keys" / "admin.key", None)
    )
    signer = TrustedKey.from_public_key(
        load_private_key(
            keys.pub("signer").parent.parent / "config" / "keys" / "signer.key", None
        ).public_key()
    )
    old = TrustPolicy((TrustRule("lab/*", (signer,)), TrustRule("team/*/resnet", (signer,))), 2, vault_id)
    catalog_writer.store_policy(2, sign_policy(old, admin), "admin")
    ok(run("sign", vault_ready, "--key", "signer"))
    shown = json.loads(ok(run("trust", "show", "--json")).stdout)
    assert [(r["namespace"], r["old_syntax"]) for r in shown["rules"]] == [
        ("lab/*", False),
        ("team/*/resnet", True),
    ]
    listed = ok(run("trust", "show"))
    assert "warning: rule 'team/*/resnet' uses the old glob syntax" in listed.stderr
    fails(run("verify", vault_ready), 8, "trust rule 'team/*/resnet'", "old glob syntax", "team/+/resnet")
    fails(run("pull", vault_ready, str(tmp_path / "out")), 8, "old glob syntax")
    _nothing_written(tmp_path / "out")
    fails(
        run("trust", "add", "team/*/resnet", "--key", str(keys.pub("signer")), "--admin-key", "admin"),
        2,
        "'*' is only allowed as the last segment",
    )
    ok(run("trust", "remove", "team/*/resnet", "--admin-key", "admin"))
    _trust(run, keys, "team/+/resnet", "signer")
    assert json.loads(ok(run("verify", vault_ready, "--json")).stdout)["rule"] == "team/+/resnet"
