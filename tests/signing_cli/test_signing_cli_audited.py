"""Every failed verification that reads the vault leaves exactly one audit row; a success leaves none.

``mlvault verify REF`` records through the signature service; ``pull`` records its trust check
inside its own failure recording; offline ``verify DIR --signature F --key K`` has no vault and
records nothing (it must not even import the catalog, see ``test_signing_cli_roundtrip``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clihelpers import ARTIFACT, Keys, Run, fails, ok


def _verify_rows(run: Run) -> list[dict[str, Any]]:
    rows = json.loads(ok(run("audit", "ls", "--action", "verify", "--json")).stdout)
    assert isinstance(rows, list)
    return rows


def test_each_failed_verify_leaves_one_row(run: Run, vault_ready: str, keys: Keys, tmp_path: Path) -> None:
    fails(run("verify", vault_ready), 13, "no trust policy")
    rows = _verify_rows(run)
    assert [(r["target"], r["outcome"], r["details"]["error"]) for r in rows] == [
        (vault_ready, "failed", "UntrustedSignerError")
    ]

    ok(run("trust", "add", "team/*", "--key", str(keys.pub("signer")), "--admin-key", "admin"))
    fails(run("verify", vault_ready), 13, "has no signature")
    fails(run("verify", f"{ARTIFACT}@v9"), 3)
    ok(run("sign", vault_ready, "--key", "other"))
    fails(run("verify", vault_ready), 13, "outside the trust policy")
    rows = _verify_rows(run)
    assert [(r["target"], r["details"]["error"]) for r in rows[1:]] == [
        (vault_ready, "UntrustedSignerError"),
        (f"{ARTIFACT}@v9", "NotFoundError"),
        (vault_ready, "UntrustedSignerError"),
    ]
    assert {r["outcome"] for r in rows} == {"failed"}

    fails(run("pull", vault_ready, str(tmp_path / "out")), 13, "outside the trust policy")
    pulled = _verify_rows(run)[-1]
    assert len(_verify_rows(run)) == 5
    assert (pulled["target"], pulled["details"]["during"]) == (vault_ready, "pull")

    ok(run("sign", vault_ready, "--key", "signer"))
    ok(run("verify", vault_ready))
    ok(run("verify", "--json", vault_ready))
    assert len(_verify_rows(run)) == 5  # successes are not verify rows


def test_a_tampered_trust_policy_is_an_audited_failure(run: Run, vault_ready: str, keys: Keys) -> None:
    ok(run("trust", "add", "team/*", "--key", str(keys.pub("signer")), "--admin-key", "admin"))
    ok(run("trust", "pin", keys.fingerprint("other"), "--replace"))  # the policy's admin is now unpinned
    fails(run("verify", vault_ready), 13, "unpinned key")
    (row,) = _verify_rows(run)
    assert (row["target"], row["details"]["error"]) == (vault_ready, "UntrustedSignerError")
