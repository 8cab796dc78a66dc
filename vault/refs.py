"""The reference grammar: ``ns/name``, ``ns/name@v3``, ``ns/name@prod``, ``ns/name@sha256:<hex>``.

Artifact names are ``/``-separated segments of letters, digits, ``.``, ``_`` and ``-``
(each starting with a letter or digit), at least two segments (namespace and name). The
first segment is the top-level namespace, which selects the keyring. Tags may not look
like a version number or a digest, so every reference has one meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vault.errors import UsageError

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_NAME_RE = re.compile(rf"^{_SEGMENT}(/{_SEGMENT}){{1,7}}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NUMBER_RE = re.compile(r"^v([1-9][0-9]{0,9})$")
_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{12,64})$")


@dataclass(frozen=True)
class Ref:
    """A parsed reference; at most one of number, tag, digest_prefix is set."""

    artifact: str
    number: int | None = None
    tag: str | None = None
    digest_prefix: str | None = None

    @property
    def namespace(self) -> str:
        """The top-level namespace (keyring scope)."""
        return self.artifact.split("/", 1)[0]

    def __str__(self) -> str:
        if self.number is not None:
            return f"{self.artifact}@v{self.number}"
        if self.tag is not None:
            return f"{self.artifact}@{self.tag}"
        if self.digest_prefix is not None:
            return f"{self.artifact}@sha256:{self.digest_prefix}"
        return self.artifact


def check_artifact_name(name: str) -> str:
    """Return ``name`` if it is a valid artifact name, else UsageError."""
    if not _NAME_RE.fullmatch(name) or any(seg in (".", "..") for seg in name.split("/")):
        raise UsageError(
            f"invalid artifact name {name!r}: expected namespace/name, e.g. team/resnet "
            "(letters, digits, '.', '_', '-')"
        )
    return name


def check_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag name, else UsageError."""
    # Refuse every tag parse_ref would read as a (malformed) version, e.g. v0 or v1.5: unreachable.
    if not _TAG_RE.match(tag) or re.match(r"^v[0-9]", tag) or tag.startswith("sha256"):
        raise UsageError(f"invalid tag {tag!r}: letters, digits, '.', '_', '-', and not like v3 or sha256:…")
    return tag


def parse_ref(text: str) -> Ref:
    """Parse a reference, or raise UsageError naming what is wrong."""
    name, sep, selector = text.partition("@")
    check_artifact_name(name)
    if not sep:
        return Ref(name)
    if match := _NUMBER_RE.fullmatch(selector):
        return Ref(name, number=int(match.group(1)))
    if selector.startswith("sha256"):
        if match := _DIGEST_RE.fullmatch(selector):
            return Ref(name, digest_prefix=match.group(1))
        raise UsageError(f"invalid digest in {text!r}: use sha256: and at least 12 lower-case hex digits")
    if _TAG_RE.fullmatch(selector) and not re.match(r"v[0-9]", selector):
        return Ref(name, tag=selector)
    raise UsageError(
        f"invalid reference {text!r}: expected {name}, {name}@v3, {name}@<tag> or {name}@sha256:<hex>"
    )
