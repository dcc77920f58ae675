"""segment_bridge.signature against twilio's own RequestValidator as the oracle."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_bridge.exceptions import SignatureError
from segment_bridge.signature import (
    Algorithm,
    SignatureCheck,
    SignatureCheckFailed,
    SignatureSettings,
    SigningSecrets,
    body_sha256,
    compute_signature,
    is_valid,
    sign,
    signed_url,
    verify,
)

twilio_validator = pytest.importorskip("twilio.request_validator")
RequestValidator = twilio_validator.RequestValidator

TOKEN = "12345678901234567890123456789012"
OTHER_TOKEN = "abcdefabcdefabcdefabcdefabcdefab"
PUBLIC_URL = "https://bridge.example.com/events"
BODY = b'{"specversion":"1.0","type":"com.twilio.voice.status-callback.call.completed","id":"VW1"}'


def twilio_sign(url: str, body: bytes, token: str = TOKEN) -> tuple[str, str]:
    """Sign the way Twilio does, using only twilio-python's primitives."""
    oracle = RequestValidator(token)
    separator = "&" if "?" in url else "?"
    full = f"{url}{separator}bodySHA256={oracle.compute_hash(body.decode())}"
    return full, oracle.compute_signature(full, {})


def twilio_accepts(url: str, body: bytes, signature: str, token: str = TOKEN) -> bool:
    try:
        return bool(RequestValidator(token).validate(url, body.decode(), signature))
    except TypeError:
        # twilio raises TypeError for a str body and a URL without bodySHA256 (FACTS 2.2): a rejection.
        return False


def failed_check(url: str, body: bytes, signature: str | None, token: str = TOKEN) -> SignatureCheck:
    with pytest.raises(SignatureCheckFailed) as caught:
        verify(url, body, signature, token)
    return caught.value.check


def test_valid_request_verifies_and_twilio_agrees() -> None:
    url, signature = twilio_sign(PUBLIC_URL, BODY)
    verify(url, BODY, signature, TOKEN)
    assert twilio_accepts(url, BODY, signature)


def test_sign_matches_twilio_signing() -> None:
    assert sign(PUBLIC_URL, BODY, TOKEN) == twilio_sign(PUBLIC_URL, BODY)
    assert sign(f"{PUBLIC_URL}?a=1", BODY, TOKEN) == twilio_sign(f"{PUBLIC_URL}?a=1", BODY)
    assert body_sha256(BODY) == RequestValidator(TOKEN).compute_hash(BODY.decode())
    assert compute_signature(PUBLIC_URL, TOKEN.encode()) == RequestValidator(TOKEN).compute_signature(PUBLIC_URL, {})


def test_tampered_body_fails_body_hash_check() -> None:
    url, signature = twilio_sign(PUBLIC_URL, BODY)
    tampered = BODY.replace(b"VW1", b"VW2")
    assert failed_check(url, tampered, signature) is SignatureCheck.BODY_HASH_MISMATCH
    assert not twilio_accepts(url, tampered, signature)


def test_wrong_url_fails_signature_check() -> None:
    url, signature = twilio_sign(PUBLIC_URL, BODY)
    wrong = url.replace("/events", "/other")
    assert failed_check(wrong, BODY, signature) is SignatureCheck.SIGNATURE_MISMATCH
    assert not twilio_accepts(wrong, BODY, signature)
    http = url.replace("https://", "http://")
    assert failed_check(http, BODY, signature) is SignatureCheck.SIGNATURE_MISMATCH
    assert not twilio_accepts(http, BODY, signature)


def test_missing_body_hash_is_rejected_before_anything_else() -> None:
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL, {})
    assert failed_check(PUBLIC_URL, BODY, signature) is SignatureCheck.MISSING_BODY_HASH
    assert not twilio_accepts(PUBLIC_URL, BODY, signature)
    empty = f"{PUBLIC_URL}?bodySHA256="
    assert failed_check(empty, BODY, compute_signature(empty, TOKEN)) is SignatureCheck.MISSING_BODY_HASH


def test_missing_header_is_named() -> None:
    url, _ = twilio_sign(PUBLIC_URL, BODY)
    assert failed_check(url, BODY, None) is SignatureCheck.MISSING_HEADER
    assert failed_check(url, BODY, "") is SignatureCheck.MISSING_HEADER


def test_wrong_token_fails_signature_check() -> None:
    url, signature = twilio_sign(PUBLIC_URL, BODY, OTHER_TOKEN)
    assert failed_check(url, BODY, signature) is SignatureCheck.SIGNATURE_MISMATCH
    assert not twilio_accepts(url, BODY, signature)


@pytest.mark.parametrize(
    ("signed", "received"),
    [
        ("https://bridge.example.com:443/events", "https://bridge.example.com/events"),
        ("https://bridge.example.com/events", "https://bridge.example.com:443/events"),
        ("http://bridge.example.com:80/events", "http://bridge.example.com/events"),
        ("http://bridge.example.com/events", "http://bridge.example.com:80/events"),
    ],
)
def test_default_port_is_accepted_with_and_without(signed: str, received: str) -> None:
    signed_full, signature = twilio_sign(signed, BODY)
    received_full = signed_full.replace(signed, received)
    verify(received_full, BODY, signature, TOKEN)
    assert twilio_accepts(received_full, BODY, signature)


def test_ipv6_literal_is_not_mistaken_for_a_port() -> None:
    url, signature = twilio_sign("https://[2001:db8::1]/events", BODY)
    assert twilio_accepts(url, BODY, signature)
    verify(url, BODY, signature, TOKEN)
    verify(url.replace("]/", "]:443/"), BODY, signature, TOKEN)
    # The colons inside the brackets are no port: another address, scheme or token is refused.
    for wrong in (url.replace("db8::1", "db8::2"), url.replace("https:", "http:"), url.replace("[2001:", "[2002:")):
        assert failed_check(wrong, BODY, signature) is SignatureCheck.SIGNATURE_MISMATCH
        assert not twilio_accepts(wrong, BODY, signature)
    assert failed_check(url, BODY, signature, OTHER_TOKEN) is SignatureCheck.SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    "query",
    ["q=a%20b", "q=a+b", "q=it%27s", "q=it's", "b=2&a=1", "a=1&a=2", "x=%7E&y=~", "empty=&z"],
)
def test_query_is_kept_byte_for_byte(query: str) -> None:
    url, signature = twilio_sign(f"{PUBLIC_URL}?{query}", BODY)
    raw_query = url.partition("?")[2]
    rebuilt = signed_url(PUBLIC_URL, raw_query.encode())
    assert rebuilt == url
    verify(rebuilt, BODY, signature, TOKEN)
    assert twilio_accepts(rebuilt, BODY, signature)
    # Any re-encoding of the query (what a framework's parsed query would give back) breaks the signature.
    for before, after in (("%20", "+"), ("+", "%20"), ("%27", "'"), ("'", "%27"), ("b=2&a=1", "a=1&b=2")):
        if before in query:
            reencoded = url.replace(before, after, 1)
            assert failed_check(reencoded, BODY, signature) is SignatureCheck.SIGNATURE_MISMATCH


def test_signed_url_drops_credentials_and_configured_query() -> None:
    assert signed_url("https://user:pw@bridge.example.com/events", b"bodySHA256=ab") == (
        "https://bridge.example.com/events?bodySHA256=ab"
    )
    assert signed_url("https://bridge.example.com/events?token=1", "token=1&bodySHA256=ab") == (
        "https://bridge.example.com/events?token=1&bodySHA256=ab"
    )
    assert signed_url(PUBLIC_URL, b"") == PUBLIC_URL


def test_non_utf8_query_bytes_survive() -> None:
    # twilio's validator cannot encode such a URL, so the oracle is the HMAC over the bytes on the wire.
    raw = b"q=\xff&bodySHA256=" + RequestValidator(TOKEN).compute_hash(BODY.decode()).encode()
    on_the_wire = PUBLIC_URL.encode() + b"?" + raw
    signature = base64.b64encode(hmac.new(TOKEN.encode(), on_the_wire, hashlib.sha1).digest()).decode()
    url = signed_url(PUBLIC_URL, raw)
    verify(url, BODY, signature, TOKEN)
    # Any reading of the byte but the byte itself (a replacement character, Latin-1, percent-encoding) is refused.
    for reading in ("\ufffd", "\xff", "%FF"):
        assert failed_check(url.replace("\udcff", reading), BODY, signature) is SignatureCheck.SIGNATURE_MISMATCH
    assert failed_check(url, BODY.replace(b"VW1", b"VW2"), signature) is SignatureCheck.BODY_HASH_MISMATCH


def test_errors_never_carry_the_token_signature_or_body() -> None:
    url, signature = twilio_sign(PUBLIC_URL, BODY, OTHER_TOKEN)
    with pytest.raises(SignatureError) as caught:
        verify(url, BODY, signature, TOKEN)
    text = f"{caught.value!s} {caught.value!r}"
    for secret in (TOKEN, OTHER_TOKEN, signature, BODY.decode()):
        assert secret not in text
    assert "signature_mismatch" in text


def test_is_valid() -> None:
    url, signature = sign(PUBLIC_URL, BODY, TOKEN)
    assert is_valid(url, BODY, signature, TOKEN)
    assert not is_valid(url, BODY + b" ", signature, TOKEN)


# Query pieces built from what sink URLs really carry, including the characters that encodings disagree on.
_query_char = st.sampled_from([*"abcXYZ019-_.~!*'()+,;:@/$", "%20", "%27", "%2B", "%7E", "%25", "%3D", "%26"])
_query_text = st.lists(_query_char, max_size=8).map("".join)
_pair = st.tuples(_query_text, _query_text).map(lambda kv: f"{kv[0]}={kv[1]}" if kv[1] else kv[0])


@settings(max_examples=300, deadline=None)
@given(
    body=st.text(max_size=200),
    pairs=st.lists(_pair, max_size=4),
    position=st.integers(min_value=0, max_value=4),
    base=st.sampled_from([PUBLIC_URL, "https://bridge.example.com:443/events", "http://127.0.0.1:8000/hook"]),
    body_hash=st.sampled_from(["right", "wrong", "missing", "upper"]),
    signing_token=st.sampled_from([TOKEN, OTHER_TOKEN]),
    tamper=st.booleans(),
)
def test_verify_agrees_with_twilio(
    body: str,
    pairs: list[str],
    position: int,
    base: str,
    body_hash: str,
    signing_token: str,
    tamper: bool,
) -> None:
    raw = body.encode()
    digest = RequestValidator(TOKEN).compute_hash(body)
    pieces = list(pairs)
    if body_hash != "missing":
        value = {"right": digest, "wrong": "0" * 64, "upper": digest.upper()}[body_hash]
        pieces.insert(min(position, len(pieces)), f"bodySHA256={value}")
    url = f"{base}?{'&'.join(pieces)}" if pieces else base
    signature = RequestValidator(signing_token).compute_signature(url, {})
    received = raw + b"x" if tamper else raw
    expected = twilio_accepts(url, received, signature)
    if body_hash == "missing":
        # The one deliberate difference: twilio skips the hash check (and accepts) an empty body whose URL
        # has no bodySHA256; a JSON sink request always carries one, so we reject it.
        expected = False
    assert is_valid(url, received, signature, TOKEN) == expected


_hash_item = st.sampled_from(["bodySHA256=abc", "bodySHA256=", "bodySHA256", "bodysha256=x", "bodySHA256=d=e"])


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.one_of(_hash_item, _pair), max_size=6))
def test_body_hash_claim_reads_what_parse_qs_reads(items: list[str]) -> None:
    # The fast split must read exactly what parse_qs (twilio's validator) reads: the first non-empty value,
    # percent-decoded, whatever the blanks, repeats and pieces without '=' around it.
    from urllib.parse import parse_qs

    from segment_bridge.signature import _claimed_body_hash

    query = "&".join(items)
    values = parse_qs(query).get("bodySHA256")
    assert _claimed_body_hash(query) == (values[0] if values else None)


# ----------------------------------------------------------------------------------------------------------------
# Malformed signatures, and shared-key (Webhooks configuration) signatures, against twilio's validator
# ----------------------------------------------------------------------------------------------------------------

get_signature_algorithm = twilio_validator.get_signature_algorithm
ALGORITHMS = ["HMAC_SHA1", "HMAC_SHA256"]
KEY_ID = "webhooks_sharedkey_0123456789abcdef"
OTHER_KEY_ID = "webhooks_sharedkey_fedcba9876543210"
SHARED_SECRET = "shared-S3cret-for-tests-0123456789abcdef"
OTHER_SHARED_SECRET = "shared-0ther-S3cret-for-tests-987654321"
SECRETS = SigningSecrets([TOKEN], {KEY_ID: SHARED_SECRET, OTHER_KEY_ID: OTHER_SHARED_SECRET})


def oracle_sign(url: str, body: bytes, secret: str, algorithm: str) -> tuple[str, str]:
    """Sign with twilio-python alone: the URL with bodySHA256, and the signature under ``algorithm``."""
    oracle = RequestValidator(secret)
    separator = "&" if "?" in url else "?"
    full = f"{url}{separator}bodySHA256={oracle.compute_hash(body.decode())}"
    return full, oracle.compute_signature(full, {}, algorithm)


def oracle_accepts(url: str, body: bytes, signature: str, secret: str, header: str | None) -> bool:
    return bool(RequestValidator(secret).validate(url, body.decode(), signature, get_signature_algorithm(header)))


def header_for(algorithm: str, key_id: str | None = KEY_ID) -> str:
    return f"key={key_id},algorithm={algorithm}" if key_id is not None else f"algorithm={algorithm}"


def failed_with(url: str, body: bytes, signature: str, secrets: object, header: str | None) -> SignatureCheck:
    with pytest.raises(SignatureCheckFailed) as caught:
        verify(url, body, signature, secrets, header)  # type: ignore[arg-type]
    return caught.value.check


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_truncated_signature_never_matches(algorithm: str) -> None:
    """Every proper prefix of the right signature is refused: the HMAC is compared over its full length."""
    url, signature = oracle_sign(PUBLIC_URL, BODY, SHARED_SECRET, algorithm)
    header = header_for(algorithm)
    verify(url, BODY, signature, SECRETS, header)
    for length in range(1, len(signature)):
        prefix = signature[:length]
        assert not oracle_accepts(url, BODY, prefix, SHARED_SECRET, header)
        assert failed_with(url, BODY, prefix, SECRETS, header) is SignatureCheck.SIGNATURE_MISMATCH


def _malformed(signature: str, kind: str) -> str:
    digest = base64.b64decode(signature)
    return {
        "truncated": signature[:-1],
        "padding_dropped": signature.rstrip("="),
        "one_char_more": signature + "A",
        "padding_added": signature + "=",
        "doubled": signature * 2,
        "wrong_case": signature.swapcase(),
        "not_base64": "!" + signature[1:],
        "hex_digest": digest.hex(),
        "whitespace": f" {signature}\n",
        "empty": "",
    }[kind]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "padding_dropped",
        "one_char_more",
        "padding_added",
        "doubled",
        "wrong_case",
        "not_base64",
        "hex_digest",
        "whitespace",
        "empty",
    ],
)
@pytest.mark.parametrize("signer", ["auth_token", "shared_key"])
def test_malformed_signatures_are_refused_as_twilio_refuses_them(algorithm: str, kind: str, signer: str) -> None:
    secret, header = (SHARED_SECRET, header_for(algorithm)) if signer == "shared_key" else (TOKEN, None)
    if header is None and algorithm != "HMAC_SHA1":
        header = header_for(algorithm, key_id=None)
    url, signature = oracle_sign(PUBLIC_URL, BODY, secret, algorithm)
    assert oracle_accepts(url, BODY, signature, secret, header)
    verify(url, BODY, signature, SECRETS, header)
    bad = _malformed(signature, kind)
    assert bad != signature
    assert not oracle_accepts(url, BODY, bad, secret, header)
    expected = SignatureCheck.MISSING_HEADER if kind == "empty" else SignatureCheck.SIGNATURE_MISMATCH
    assert failed_with(url, BODY, bad, SECRETS, header) is expected


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_shared_key_signature_verifies_for_both_algorithms(algorithm: str) -> None:
    for key_id, secret in ((KEY_ID, SHARED_SECRET), (OTHER_KEY_ID, OTHER_SHARED_SECRET)):
        url, signature = oracle_sign(PUBLIC_URL, BODY, secret, algorithm)
        header = header_for(algorithm, key_id)
        assert oracle_accepts(url, BODY, signature, secret, header)
        verify(url, BODY, signature, SECRETS, header)
        assert is_valid(url, BODY, signature, SECRETS, header)
        # The algorithm is the header's (case as twilio reads it, blanks around the parts ignored).
        verify(url, BODY, signature, SECRETS, f" algorithm = {algorithm.lower()} , key = {key_id} ")
        # Without the header the request reads as Auth Token signed (HMAC-SHA1): the shared key is never tried.
        assert failed_with(url, BODY, signature, SECRETS, None) is SignatureCheck.SIGNATURE_MISMATCH
        # The other key, or the other algorithm, does not verify it; a tampered body fails the body hash.
        other = OTHER_KEY_ID if key_id == KEY_ID else KEY_ID
        assert failed_with(url, BODY, signature, SECRETS, header_for(algorithm, other)) is (
            SignatureCheck.SIGNATURE_MISMATCH
        )
        flipped = "HMAC_SHA1" if algorithm == "HMAC_SHA256" else "HMAC_SHA256"
        assert not oracle_accepts(url, BODY, signature, secret, header_for(flipped, key_id))
        assert failed_with(url, BODY, signature, SECRETS, header_for(flipped, key_id)) is (
            SignatureCheck.SIGNATURE_MISMATCH
        )
        tampered = BODY.replace(b"VW1", b"VW2")
        assert not oracle_accepts(url, tampered, signature, secret, header)
        assert failed_with(url, tampered, signature, SECRETS, header) is SignatureCheck.BODY_HASH_MISMATCH


def test_auth_token_signature_under_a_named_algorithm_and_no_key() -> None:
    url, signature = oracle_sign(PUBLIC_URL, BODY, TOKEN, "HMAC_SHA256")
    header = "algorithm=HMAC_SHA256"
    assert oracle_accepts(url, BODY, signature, TOKEN, header)
    verify(url, BODY, signature, SECRETS, header)
    assert failed_with(url, BODY, signature, SECRETS, None) is SignatureCheck.SIGNATURE_MISMATCH


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rotation_accepts_either_token(algorithm: str) -> None:
    rotating = SigningSecrets([TOKEN, OTHER_TOKEN])
    header = None if algorithm == "HMAC_SHA1" else header_for(algorithm, key_id=None)
    for token in (TOKEN, OTHER_TOKEN):
        url, signature = oracle_sign(PUBLIC_URL, BODY, token, algorithm)
        assert oracle_accepts(url, BODY, signature, token, header)
        verify(url, BODY, signature, rotating, header)
    url, signature = oracle_sign(PUBLIC_URL, BODY, OTHER_TOKEN, algorithm)
    assert failed_with(url, BODY, signature, SigningSecrets([TOKEN]), header) is SignatureCheck.SIGNATURE_MISMATCH
    url, signature = oracle_sign(PUBLIC_URL, BODY, "a-third-token-000000000000000000", algorithm)
    assert failed_with(url, BODY, signature, rotating, header) is SignatureCheck.SIGNATURE_MISMATCH
    # A shared key is no Auth Token: a request naming no key is not checked against it.
    url, signature = oracle_sign(PUBLIC_URL, BODY, SHARED_SECRET, algorithm)
    assert failed_with(url, BODY, signature, SECRETS, header) is SignatureCheck.SIGNATURE_MISMATCH


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_key_id_not_configured_is_its_own_check(algorithm: str) -> None:
    url, signature = oracle_sign(PUBLIC_URL, BODY, SHARED_SECRET, algorithm)
    header = header_for(algorithm, "webhooks_sharedkey_unknown")
    assert failed_with(url, BODY, signature, SECRETS, header) is SignatureCheck.UNKNOWN_KEY
    # A key id is compared exactly.
    assert failed_with(url, BODY, signature, SECRETS, header_for(algorithm, KEY_ID.upper())) is (
        SignatureCheck.UNKNOWN_KEY
    )
    # Only shared keys configured, and a request signed with the Auth Token: no secret to check it with.
    url, signature = oracle_sign(PUBLIC_URL, BODY, TOKEN, "HMAC_SHA1")
    keys_only = SigningSecrets([], {KEY_ID: SHARED_SECRET})
    assert failed_with(url, BODY, signature, keys_only, None) is SignatureCheck.UNKNOWN_KEY


@pytest.mark.parametrize("named", ["HMAC_SHA512", "HMAC-SHA256", "SHA256", "HMAC_SHA256X", "RSA"])
def test_an_unknown_algorithm_is_its_own_check_and_twilio_refuses_it_too(named: str) -> None:
    url, signature = oracle_sign(PUBLIC_URL, BODY, SHARED_SECRET, "HMAC_SHA256")
    header = header_for(named)
    assert not oracle_accepts(url, BODY, signature, SHARED_SECRET, header)
    assert failed_with(url, BODY, signature, SECRETS, header) is SignatureCheck.UNKNOWN_ALGORITHM
    assert failed_with(url, BODY, signature, SECRETS, f"algorithm={named}") is SignatureCheck.UNKNOWN_ALGORITHM


_header_part = st.one_of(
    st.sampled_from(["algorithm", "key", " algorithm ", "ALGORITHM", "algo", ""]).flatmap(
        lambda name: st.sampled_from(["=", "", "=="]).flatmap(
            lambda eq: st.sampled_from(
                ["HMAC_SHA1", "HMAC_SHA256", "hmac_sha256", " HMAC_SHA256 ", "HMAC_SHA512", "", KEY_ID, "a=b"]
            ).map(lambda value: f"{name}{eq}{value}")
        )
    ),
    st.text(alphabet="ak=,_ HMACSH256l", max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_header_part, max_size=4))
def test_settings_header_reads_the_algorithm_as_twilio_does(parts: list[str]) -> None:
    header = ",".join(parts)
    assert SignatureSettings.parse(header).algorithm == get_signature_algorithm(header).upper()


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(_header_part, max_size=3),
    signing_secret=st.sampled_from([TOKEN, OTHER_TOKEN, SHARED_SECRET, OTHER_SHARED_SECRET]),
    signing_algorithm=st.sampled_from(ALGORITHMS),
    key_part=st.sampled_from([None, KEY_ID, OTHER_KEY_ID, "webhooks_sharedkey_unknown"]),
    tamper=st.booleans(),
)
def test_verify_with_settings_agrees_with_twilio(
    parts: list[str], signing_secret: str, signing_algorithm: str, key_part: str | None, tamper: bool
) -> None:
    header = ",".join([*parts, f"key={key_part}"] if key_part is not None else parts)
    url, signature = oracle_sign(PUBLIC_URL, BODY, signing_secret, signing_algorithm)
    received = BODY + b" " if tamper else BODY
    key_id = SignatureSettings.parse(header).key_id
    # twilio's validator is given the one secret a receiver picks for the key the header names.
    secret = {None: TOKEN, KEY_ID: SHARED_SECRET, OTHER_KEY_ID: OTHER_SHARED_SECRET}.get(key_id)
    expected = secret is not None and oracle_accepts(url, received, signature, secret, header)
    assert is_valid(url, received, signature, SECRETS, header) == expected


def test_secrets_never_in_reprs_or_errors() -> None:
    text = repr(SECRETS)
    assert KEY_ID in text
    for secret in (TOKEN, SHARED_SECRET, OTHER_SHARED_SECRET):
        assert secret not in text
    url, signature = oracle_sign(PUBLIC_URL, BODY, SHARED_SECRET, "HMAC_SHA256")
    for header in (header_for("HMAC_SHA512"), header_for("HMAC_SHA256", "nope"), header_for("HMAC_SHA1")):
        with pytest.raises(SignatureCheckFailed) as caught:
            verify(url, BODY, signature, SECRETS, header)
        message = f"{caught.value!s} {caught.value!r}"
        for secret in (TOKEN, SHARED_SECRET, signature):
            assert secret not in message


def test_sign_and_compute_signature_match_twilio_for_both_algorithms() -> None:
    for algorithm in ALGORITHMS:
        assert sign(PUBLIC_URL, BODY, SHARED_SECRET, Algorithm(algorithm)) == oracle_sign(
            PUBLIC_URL, BODY, SHARED_SECRET, algorithm
        )
        assert compute_signature(PUBLIC_URL, SHARED_SECRET, Algorithm(algorithm)) == RequestValidator(
            SHARED_SECRET
        ).compute_signature(PUBLIC_URL, {}, algorithm)
