"""Trust policy: admin-signed documents, most-specific-glob rules, thresholds, untrusted signers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from vault.errors import (
    ConfigurationError,
    MalformedSignatureError,
    SignatureInvalidError,
    UntrustedSignerError,
    UsageError,
)
from vault.signing import (
    FileDigest,
    LocalSigner,
    TrustedKey,
    TrustPolicy,
    TrustRule,
    evaluate,
    parse_bundle,
    sign_files,
    sign_policy,
    verify_bundle,
    verify_policy,
    verify_trusted,
)
from vault.signing.oms import Bundle, pae
from vault.signing.policy import (
    POLICY_PAYLOAD_TYPE,
    SIGNED_POLICY_MEDIA_TYPE,
    legacy_rules,
    policy_to_json,
    select_rule,
)

FILES = [FileDigest("model.safetensors", b"\x07" * 32)]


@pytest.fixture(scope="module")
def alice() -> LocalSigner:
    return LocalSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def bob() -> LocalSigner:
    return LocalSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def carol() -> LocalSigner:
    return LocalSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def admin() -> LocalSigner:
    return LocalSigner(ec.generate_private_key(ec.SECP256R1()))


def _trusted(*signers: LocalSigner) -> tuple[TrustedKey, ...]:
    return tuple(TrustedKey.from_public_key(s.public_key) for s in signers)


@pytest.fixture(scope="module")
def policy(alice: LocalSigner, bob: LocalSigner, carol: LocalSigner) -> TrustPolicy:
    return TrustPolicy(
        rules=(
            TrustRule("team/*", _trusted(alice)),
            TrustRule("team/vision/*", _trusted(bob)),
            TrustRule("team/vision/prod/*", _trusted(alice, bob), threshold=2),
            TrustRule("other/*", _trusted(carol)),
        ),
        serial=4,
    )


def _bundle(signer: LocalSigner, files: list[FileDigest] = FILES) -> Bundle:
    return parse_bundle(sign_files(files, signer, {"artifact": "x"}, model_name="m"))


def test_signed_policy_round_trip(policy: TrustPolicy, admin: LocalSigner) -> None:
    document = sign_policy(policy, admin)
    assert verify_policy(document, [admin.fingerprint()]) == policy


def test_unsigned_policy_is_refused(policy: TrustPolicy, admin: LocalSigner) -> None:
    with pytest.raises(MalformedSignatureError, match="not signed"):
        verify_policy(policy_to_json(policy), [admin.fingerprint()])


def test_policy_signed_by_another_key_is_refused(
    policy: TrustPolicy, admin: LocalSigner, alice: LocalSigner
) -> None:
    with pytest.raises(UntrustedSignerError, match="not the pinned admin key"):
        verify_policy(sign_policy(policy, alice), [admin.fingerprint()])


def test_edited_policy_fails_its_signature(
    policy: TrustPolicy, admin: LocalSigner, carol: LocalSigner
) -> None:
    """A catalog writer who adds their own key to a rule cannot keep the admin signature valid."""
    document = json.loads(sign_policy(policy, admin))
    payload = json.loads(base64.b64decode(document["payload"]))
    payload["rules"][0]["keys"] += [
        {"fingerprint": carol.fingerprint(), "publicKey": carol.public_key_pem().decode()}
    ]
    document["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(SignatureInvalidError, match="policy was modified"):
        verify_policy(json.dumps(document).encode(), [admin.fingerprint()])


def test_policy_signature_is_not_a_model_signature(policy: TrustPolicy, admin: LocalSigner) -> None:
    """The policy PAE uses its own payload type, so its signature cannot be replayed as a bundle."""
    document = json.loads(sign_policy(policy, admin))
    forged = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": admin.key_hint()}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": document["payload"],
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": document["signature"], "keyid": ""}],
        },
    }
    with pytest.raises(SignatureInvalidError):
        verify_bundle(parse_bundle(json.dumps(forged).encode()), [admin.public_key])


def test_no_pinned_admin_key_is_a_usage_error(policy: TrustPolicy, admin: LocalSigner) -> None:
    with pytest.raises(UsageError, match="pin the admin key"):
        verify_policy(sign_policy(policy, admin), [])


def test_most_specific_pattern_wins(policy: TrustPolicy) -> None:
    assert select_rule(policy, "team/nlp/bert").namespace == "team/*"
    assert select_rule(policy, "team/vision/resnet").namespace == "team/vision/*"
    assert select_rule(policy, "team/vision/prod/resnet").namespace == "team/vision/prod/*"
    assert legacy_rules(policy) == ()


def _rules(alice: LocalSigner, *patterns: str) -> TrustPolicy:
    return TrustPolicy(tuple(TrustRule(p, _trusted(alice)) for p in patterns))


@pytest.mark.parametrize(
    ("patterns", "artifact", "winner"),
    [
        (("team/*", "team/vision/resnet"), "team/vision/resnet", "team/vision/resnet"),  # exact wins
        (("team/+/resnet", "team/vision/+"), "team/vision/resnet", "team/vision/+"),  # later first wildcard
        (("team/vision/*", "team/vision/+"), "team/vision/resnet", "team/vision/+"),  # no trailing '*'
        (("team/+/+", "team/+/x"), "team/a/x", "team/+/x"),  # fewer '+'
        (("team/+/*", "team/+/a/*"), "team/v/a/b", "team/+/a/*"),  # longer
        (("*", "+/+"), "team/resnet", "+/+"),  # '*' alone is the least specific
    ],
)
def test_trust_rules_follow_vaults_precedence(
    alice: LocalSigner, patterns: tuple[str, ...], artifact: str, winner: str
) -> None:
    assert select_rule(_rules(alice, *patterns), artifact).namespace == winner
    assert select_rule(_rules(alice, *reversed(patterns)), artifact).namespace == winner


def test_a_former_tie_is_resolved_by_code_point_order(alice: LocalSigner) -> None:
    """Spelt 'team/*/vision/*' and 'team/*/*/latest', these two rules tied (an error, exit 8)."""
    policy = _rules(alice, "team/+/+/latest", "team/+/vision/+")
    assert select_rule(policy, "team/a/vision/latest").namespace == "team/+/vision/+"
    assert select_rule(policy, "team/a/other/latest").namespace == "team/+/+/latest"


def test_legacy_glob_still_loads_but_refuses_what_it_covered(alice: LocalSigner, admin: LocalSigner) -> None:
    """A policy signed with an old fnmatch glob verifies, but never silently stops requiring signatures."""
    old = TrustPolicy(
        (TrustRule("team/vision/prod-*", _trusted(alice)), TrustRule("team/*", _trusted(alice))), 3, "v"
    )
    loaded = verify_policy(sign_policy(old, admin), [admin.fingerprint()])
    assert [r.namespace for r in legacy_rules(loaded)] == ["team/vision/prod-*"]
    with pytest.raises(ConfigurationError, match=r"trust rule 'team/vision/prod-\*' \(which covers team/vis"):
        select_rule(loaded, "team/vision/prod-resnet")
    assert select_rule(loaded, "team/vision/resnet").namespace == "team/*"  # the old glob never matched it


@pytest.mark.parametrize(
    ("glob", "artifact"),
    [("team/*/resnet", "team/a/b/resnet"), ("team/model-?", "team/model-1"), ("team/[ab]x", "team/ax")],
)
def test_each_legacy_form_is_refused_with_the_fix(alice: LocalSigner, glob: str, artifact: str) -> None:
    with pytest.raises(ConfigurationError, match=r"old glob syntax.*mlvault trust remove"):
        select_rule(_rules(alice, glob), artifact)


def test_trusted_signer_is_accepted(policy: TrustPolicy, bob: LocalSigner) -> None:
    statement, decision = verify_trusted([_bundle(bob)], policy, "team/vision/resnet")
    assert decision.trusted_signers == (bob.fingerprint(),)
    assert decision.rule.namespace == "team/vision/*"
    assert statement.signer_fingerprint == bob.fingerprint()


def test_key_outside_the_policy_is_untrusted(policy: TrustPolicy) -> None:
    stranger = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(UntrustedSignerError, match="not in the trust policy"):
        verify_trusted([_bundle(stranger)], policy, "team/vision/resnet")


def test_key_trusted_for_another_namespace_is_untrusted(policy: TrustPolicy, carol: LocalSigner) -> None:
    with pytest.raises(UntrustedSignerError, match=r"not trusted for namespace 'team/\*'.*only for other/\*"):
        verify_trusted([_bundle(carol)], policy, "team/nlp/bert")


def test_more_specific_rule_excludes_keys_of_broader_rules(policy: TrustPolicy, alice: LocalSigner) -> None:
    with pytest.raises(UntrustedSignerError, match="not trusted for namespace 'team/vision/\\*'"):
        evaluate(policy, "team/vision/resnet", [alice.fingerprint()])


def test_threshold_two_with_one_valid_signature_is_refused(policy: TrustPolicy, alice: LocalSigner) -> None:
    with pytest.raises(UntrustedSignerError, match="threshold 2 not met: 1 valid trusted signature for"):
        verify_trusted([_bundle(alice), _bundle(alice)], policy, "team/vision/prod/resnet")


def test_threshold_two_with_two_distinct_signers_is_accepted(
    policy: TrustPolicy, alice: LocalSigner, bob: LocalSigner
) -> None:
    _, decision = verify_trusted([_bundle(alice), _bundle(bob)], policy, "team/vision/prod/resnet")
    assert set(decision.trusted_signers) == {alice.fingerprint(), bob.fingerprint()}


def test_signatures_over_different_content_do_not_add_up(
    policy: TrustPolicy, alice: LocalSigner, bob: LocalSigner
) -> None:
    other = [FileDigest("model.safetensors", b"\x08" * 32)]
    with pytest.raises(MalformedSignatureError, match="different content"):
        verify_trusted([_bundle(alice), _bundle(bob, other)], policy, "team/vision/prod/resnet")


def test_tampered_bundle_from_a_trusted_key_fails_loudly(policy: TrustPolicy, bob: LocalSigner) -> None:
    good = _bundle(bob)
    donor = _bundle(bob, [FileDigest("x", b"\x00" * 32)])
    spliced = Bundle(good.payload, good.payload_type, donor.signature, good.key_hint)
    with pytest.raises(SignatureInvalidError):
        verify_trusted([spliced], policy, "team/vision/resnet")


def test_no_rule_means_deny(policy: TrustPolicy, alice: LocalSigner) -> None:
    with pytest.raises(UntrustedSignerError, match="no trust rule covers 'public/x'"):
        evaluate(policy, "public/x", [alice.fingerprint()])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["rules"][0].update(threshold=5), "threshold must be between"),
        (lambda p: p["rules"][0].update(threshold=True), "threshold must be between"),
        (lambda p: p["rules"][0].update(keys=[]), "at least one key"),
        (lambda p: p["rules"][0]["keys"][0].update(fingerprint="00" * 32), "does not match its key"),
        (lambda p: p["rules"].append(dict(p["rules"][0])), "same namespace glob twice"),
        (lambda p: p.update(version=2), "version 1"),
        (lambda p: p.update(extra=1), "exactly the fields"),
    ],
)
def test_malformed_policies_are_refused_even_when_signed(
    policy: TrustPolicy,
    admin: LocalSigner,
    mutate: Callable[[dict[str, Any]], object],
    message: str,
) -> None:
    payload = json.loads(policy_to_json(policy))
    mutate(payload)
    raw = json.dumps(payload).encode()

    document = {
        "mediaType": SIGNED_POLICY_MEDIA_TYPE,
        "payload": base64.b64encode(raw).decode(),
        "adminKey": admin.public_key_pem().decode(),
        "signature": base64.b64encode(admin.sign(pae(POLICY_PAYLOAD_TYPE, raw))).decode(),
    }
    with pytest.raises(MalformedSignatureError, match=message):
        verify_policy(json.dumps(document).encode(), [admin.fingerprint()])
