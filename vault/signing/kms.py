"""A :class:`~vault.signing.signers.KmsSigner` on a boto3 session, for callers that hold no client.

boto3 reads the standard AWS configuration itself (``AWS_PROFILE``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_KMS``, credentials files, instance roles); ``profile`` and ``region``
override it. Failures with no answer from AWS (no credentials, no region, an unreachable endpoint)
are mapped by :mod:`vault.aws`, as for the S3 backend, so no botocore type reaches the caller.
"""

from __future__ import annotations

from vault.errors import ConfigurationError
from vault.signing.signers import KmsSigner


def open_kms_signer(key_id: str, *, profile: str | None = None, region: str | None = None) -> KmsSigner:
    """A signer for the KMS key ``key_id`` (id, ARN or alias), checked to be ECC_NIST_P256 SIGN_VERIFY."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from vault import aws

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        client = session.client("kms")
    except (BotoCoreError, ClientError) as exc:
        raise aws.translate(
            exc, f"KMS key {key_id}", service="AWS KMS", unconfigured=ConfigurationError
        ) from exc
    return KmsSigner(client, key_id)
