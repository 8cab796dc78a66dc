"""What an access policy lists for provenance records: legacy versions and tags, kept records.

The ``provenance`` field of the policy document (:mod:`vault.access.policy`, used by
:mod:`vault.access.records`)::

    {"versions": [["<version id>", "<manifest sha256>"], ...],     # existed before the first policy
     "tags": [["team/resnet", "prod", "<version id>"], ...],       # likewise, tags and their targets
     "kept": ["<record sha256>", ...]}                             # records kept valid after a revoke

Lists are sorted, entries unique and exactly typed; anything else is ``MalformedSignatureError``.
"""

from __future__ import annotations

import re
from typing import Any

from vault.errors import MalformedSignatureError, UsageError
from vault.refs import check_artifact_name, check_tag
from vault.signing.envelope import exact_object

_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PROVENANCE_FIELDS = {"versions", "tags", "kept"}


def provenance_to_json(
    versions: frozenset[tuple[str, str]], tags: frozenset[tuple[str, str, str]], kept: frozenset[str]
) -> dict[str, Any]:
    """The ``provenance`` field of a policy document."""
    return {
        "versions": [list(v) for v in sorted(versions)],
        "tags": [list(t) for t in sorted(tags)],
        "kept": sorted(kept),
    }


def parse_provenance(
    value: object,
) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str, str]], frozenset[str]]:
    """Parse the ``provenance`` field (None: a document from before provenance records)."""
    if value is None:
        return frozenset(), frozenset(), frozenset()
    doc = exact_object(value, "access policy provenance", _PROVENANCE_FIELDS)
    versions, tags, kept = doc["versions"], doc["tags"], doc["kept"]
    if not all(isinstance(x, list) for x in (versions, tags, kept)):
        raise MalformedSignatureError("access policy provenance lists must be lists")
    if not all(_hex_pair(v) for v in versions):
        raise MalformedSignatureError("access policy provenance versions must be [version id, sha256] pairs")
    if not all(_tag_entry(t) for t in tags):
        raise MalformedSignatureError("access policy provenance tags must be [artifact, tag, version id]")
    if not all(isinstance(k, str) and _SHA256.fullmatch(k) for k in kept):
        raise MalformedSignatureError("access policy provenance kept must list record SHA-256 digests")
    result = (
        frozenset((v[0], v[1]) for v in versions),
        frozenset((t[0], t[1], t[2]) for t in tags),
        frozenset(kept),
    )
    if tuple(map(len, result)) != (len(versions), len(tags), len(kept)):
        raise MalformedSignatureError("access policy provenance lists an entry twice")
    return result


def _hex_pair(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(x, str) for x in value)
        and _ID.fullmatch(value[0]) is not None
        and _SHA256.fullmatch(value[1]) is not None
    )


def _tag_entry(value: object) -> bool:
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(x, str) for x in value):
        return False
    try:
        check_artifact_name(value[0])
        check_tag(value[1])
    except UsageError:
        return False
    return _ID.fullmatch(value[2]) is not None
