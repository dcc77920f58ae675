"""segment_bridge.signature against twilio's own RequestValidator as the oracle."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_bridge.exceptions import SignatureError
from segment_bridge.signature import (
    SignatureCheck,
    SignatureCheckFailed,
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
    url, signature = sign("https://[2001:db8::1]/events", BODY, TOKEN)
    verify(url, BODY, signature, TOKEN)
    verify(url.replace("]/", "]:443/"), BODY, signature, TOKEN)


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
    raw = b"q=\xff&bodySHA256=" + body_sha256(BODY).encode()
    url = signed_url(PUBLIC_URL, raw)
    signature = compute_signature(url, TOKEN)
    verify(url, BODY, signature, TOKEN)


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
