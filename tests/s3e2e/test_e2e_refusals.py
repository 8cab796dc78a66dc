"""What the CLI refuses to do with S3, each time with one ``error:`` line and its exit code.

Plain HTTP to a non-loopback endpoint without ``--allow-insecure-http`` (exit 2, before any
connection is made); a bucket that does not exist (exit 3, naming it); credentials the
store rejects (exit 7, through the fault proxy's 403 mode); an unknown AWS profile (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2ehelpers import FAST_KDF, assert_one_error_line, ok_json
from typer.testing import Result

INSECURE = "http://192.0.2.10:9000"  # TEST-NET-1: never routed, so a connection attempt would hang


@pytest.mark.parametrize(
    "command", [["init", "s3://some-bucket/vault", *FAST_KDF], ["ls"], ["log", "team/m"]]
)
def test_plain_http_to_a_remote_host_is_refused_without_the_flag(
    command: list[str], mlvault: Callable[..., Result]
) -> None:
    result = mlvault("--vault", "s3://some-bucket/vault", "--endpoint-url", INSECURE, *command)
    assert result.exit_code == 2
    assert_one_error_line(result.stderr, INSECURE, "--allow-insecure-http")
    assert result.stdout == ""


def test_missing_bucket_is_named(mlvault: Callable[..., Result], moto_endpoint: str) -> None:
    missing = "mlvault-e2e-no-such-bucket"
    init = mlvault("--endpoint-url", moto_endpoint, "init", f"s3://{missing}/vault", *FAST_KDF)
    assert init.exit_code == 3
    assert_one_error_line(init.stderr, f"bucket {missing} does not exist", "mlvault never creates buckets")
    ls = mlvault("--endpoint-url", moto_endpoint, "--vault", f"s3://{missing}/vault", "ls")
    assert ls.exit_code == 3
    assert_one_error_line(ls.stderr, missing)


def test_missing_vault_in_an_existing_bucket(
    mlvault: Callable[..., Result], moto_endpoint: str, bucket: str
) -> None:
    result = mlvault("--endpoint-url", moto_endpoint, "--vault", f"s3://{bucket}/nothing-here", "ls")
    assert result.exit_code == 3
    assert_one_error_line(result.stderr, f"no vault at s3://{bucket}/nothing-here", "mlvault init")


def test_rejected_credentials_end_with_exit_7(
    mlvault: Callable[..., Result], fault_proxy: Any, bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/vault"
    fault_proxy.deny = True
    init = mlvault("--endpoint-url", fault_proxy.endpoint_url, "init", url, *FAST_KDF)
    assert init.exit_code == 7
    assert_one_error_line(init.stderr, f"access denied to bucket {bucket}", "credentials")

    fault_proxy.deny = False
    assert mlvault("--endpoint-url", fault_proxy.endpoint_url, "init", url, *FAST_KDF).exit_code == 0
    (tmp_path / "w.bin").write_bytes(b"weights")
    fault_proxy.deny = True
    push = mlvault(
        "--endpoint-url", fault_proxy.endpoint_url, "--vault", url, "push", tmp_path / "w.bin", "team/m"
    )
    assert push.exit_code == 7
    assert_one_error_line(push.stderr, "access denied", bucket)
    fault_proxy.deny = False
    assert ok_json(mlvault("--endpoint-url", fault_proxy.endpoint_url, "--vault", url, "ls", "--json")) == []


def test_unknown_aws_profile(mlvault: Callable[..., Result], moto_endpoint: str, bucket: str) -> None:
    result = mlvault(
        "--endpoint-url", moto_endpoint, "--profile", "nope", "--vault", f"s3://{bucket}/v", "ls"
    )
    assert result.exit_code == 2
    assert_one_error_line(result.stderr, "AWS profile 'nope' not found")


def test_allow_insecure_http_warns_on_every_use(
    mlvault: Callable[..., Result], moto_endpoint: str, bucket: str
) -> None:
    url = f"s3://{bucket}/vault"
    base = ["--endpoint-url", moto_endpoint, "--allow-insecure-http", "--vault", url]
    for command in (["init", url, *FAST_KDF], ["ls"]):
        result = mlvault(*base, *command)
        assert result.exit_code == 0, result.stderr
        assert "warning: --allow-insecure-http" in result.stderr
