"""The reference grammar: ``ns/name``, ``ns/name@v3``, ``ns/name@<tag>``, ``ns/name@sha256:<hex>``.

Every reference has exactly one meaning: tags may not look like version numbers or digests,
and anything outside the grammar is a UsageError that names the problem.
"""

from __future__ import annotations

import pytest

from vault.errors import UsageError
from vault.refs import Ref, check_artifact_name, check_tag, parse_ref

HEX12 = "0123456789ab"
HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team/model", Ref("team/model")),
        ("team/vision/resnet-50", Ref("team/vision/resnet-50")),
        ("a/b/c/d/e/f/g/h", Ref("a/b/c/d/e/f/g/h")),
        ("Team.1/model_v2.safetensors", Ref("Team.1/model_v2.safetensors")),
        ("team/model@v1", Ref("team/model", number=1)),
        ("team/model@v42", Ref("team/model", number=42)),
        ("team/model@v1234567890", Ref("team/model", number=1234567890)),
        ("team/model@prod", Ref("team/model", tag="prod")),
        ("team/model@staging-2024.05_rc1", Ref("team/model", tag="staging-2024.05_rc1")),
        ("team/model@v", Ref("team/model", tag="v")),
        ("team/model@version", Ref("team/model", tag="version")),
        ("team/model@V3", Ref("team/model", tag="V3")),
        ("team/model@latest", Ref("team/model", tag="latest")),
        (f"team/model@sha256:{HEX12}", Ref("team/model", digest_prefix=HEX12)),
        (f"team/model@sha256:{HEX64}", Ref("team/model", digest_prefix=HEX64)),
    ],
)
def test_valid_references(text: str, expected: Ref) -> None:
    ref = parse_ref(text)
    assert ref == expected
    assert str(ref) == text
    assert parse_ref(str(ref)) == ref


def test_namespace_is_the_first_segment() -> None:
    assert parse_ref("team/vision/resnet@v2").namespace == "team"
    assert parse_ref("a/b").namespace == "a"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "model",
        "/team/model",
        "team/model/",
        "team//model",
        "team/../model",
        "team/./model",
        "../team/model",
        "team/.hidden",
        "-team/model",
        "team/_model",
        "team/mo del",
        "team/mo\tdel",
        "team\\model",
        "tëam/model",
        "team/model\0",
        "a/b/c/d/e/f/g/h/i",
        "a" * 129 + "/model",
        "team/" + "m" * 129,
        "team/model@",
        "@v1",
        "team/model@v0",
        "team/model@v01",
        "team/model@v12345678901",
        "team/model@v1.5",
        "team/model@v1@v2",
        "team/model@prod@v1",
        "team/model@pr od",
        "team/model@-prod",
        "team/model@.prod",
        "team/model@pröd",
        "team/model@" + "t" * 129,
        "team/model@sha256:",
        f"team/model@sha256:{HEX12[:11]}",
        f"team/model@sha256:{HEX12.upper()}",
        f"team/model@sha256:{HEX64}0",
        "team/model@sha256:xyzxyzxyzxyz",
        f"team/model@sha256: {HEX12}",
        f"team/model@sha512:{HEX64}",
        f"team/model@SHA256:{HEX12}",
    ],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ref(text)
    assert "invalid" in str(info.value)


@pytest.mark.parametrize(
    "text", ["team/model\n", "team/model@v3\n", "team/model@prod\n", f"team/model@sha256:{HEX12}\n"]
)
def test_trailing_newline_is_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(text)


@pytest.mark.parametrize(
    "tag",
    [
        "v1",
        "v3",
        "v42",
        "v0",
        "v01",
        "v1.5",
        "v1-rc",
        "v12345678901",
        "sha256",
        "sha256:" + HEX12,
        "sha256-x",
        "sha256abc",
    ],
)
def test_tags_that_look_like_versions_or_digests_are_refused(tag: str) -> None:
    with pytest.raises(UsageError) as info:
        check_tag(tag)
    assert "invalid tag" in str(info.value)


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a b", "a/b", "a@b", "a:b", "t" * 129, "ünï"])
def test_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(UsageError):
        check_tag(tag)


@pytest.mark.parametrize(
    "tag", ["prod", "staging", "v", "version", "V3", "latest", "rc.1", "t" * 128, "x_y-z.0"]
)
def test_valid_tags_round_trip_through_a_reference(tag: str) -> None:
    assert check_tag(tag) == tag
    assert parse_ref(f"team/model@{tag}") == Ref("team/model", tag=tag)


@pytest.mark.parametrize("name", ["team", "team/", "/x", "a/../b", "a/./b", ".a/b", "a/b/c/d/e/f/g/h/i", ""])
def test_check_artifact_name_refuses(name: str) -> None:
    with pytest.raises(UsageError) as info:
        check_artifact_name(name)
    assert "namespace/name" in str(info.value)


def test_check_artifact_name_refuses_a_trailing_newline() -> None:
    with pytest.raises(UsageError):
        check_artifact_name("team/model\n")
