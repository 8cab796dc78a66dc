"""A vault with an access policy, principals made by ``mlvault identity new --no-passphrase``, and a
runner acting as any of them (``--identity NAME``) or as the owner (no identity).

Principals and what the policy gives them:

- ``root``: admin on ``*`` (the identity whose signing key signs the policy);
- ``alice``: list, read, push, tag, sign on ``team/*`` (read by keys: an x25519 slot on ``team``);
- ``ci``: push, list on ``team/vision/+`` (policy only: no key slot);
- ``bob``: admin on ``*`` and a deny on ``team/secret/*`` (a deny wins over admin);
- ``carol``: a principal with no grant;
- ``dave``: read and list on ``team/*``, then revoked (a revoked reader);
- ``eve``: an identity that is no principal; ``frank``: one with a passphrase, no principal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault.crypto.kdf import KdfParams

CHEAP_KDF = KdfParams(1, 8, 1)
PASSPHRASE = "correct horse battery staple"
ARTIFACTS = (
    "team/vision/resnet",
    "team/vision/resnet/big",
    "team/nlp/bert",
    "team/secret/keys",
    "research/model",
)
PRINCIPALS = ("root", "alice", "ci", "bob", "carol", "dave")


@dataclass
class World:
    """The vault, its source directory, and how to run mlvault against it."""

    path: Path
    src: Path
    env: dict[str, str]
    config_dir: Path

    def run(self, who: str | None, *args: str, input: str | None = None) -> Result:
        """Run mlvault as identity ``who`` (None: the owner, by passphrase)."""
        env = dict(self.env)
        if who is None:
            env["MLVAULT_PASSPHRASE"] = PASSPHRASE
        prefix = ("--identity", who) if who else ()
        return CliRunner().invoke(app, [*prefix, *args], env=env, input=input, catch_exceptions=False)

    def ok(self, who: str | None, *args: str) -> Result:
        result = self.run(who, *args)
        assert result.exit_code == 0, (who, args, result.exit_code, result.stdout, result.stderr)
        return result

    def pub(self, name: str) -> str:
        return str(self.config_dir / "identities" / f"{name}.pub")

    def objects(self) -> set[str]:
        """Every object file in the vault's storage (tmp/ and the SQLite catalog left out)."""
        return {
            str(p.relative_to(self.path))
            for p in self.path.rglob("*")
            if p.is_file() and p.relative_to(self.path).parts[0] in ("packs", "manifests", "keys", "audit")
        }
