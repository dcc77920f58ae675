"""X-Twilio-Signature for JSON bodies (Twilio Event Streams webhook sinks).

Twilio signs a JSON request in two steps:

1. it appends ``bodySHA256=<lower-case hex SHA-256 of the raw body>`` to the query string of the sink URL;
2. it sends ``X-Twilio-Signature: base64(HMAC-SHA1(auth token, full URL including that query))``.

A request signed with a **shared key** (Twilio's Webhooks configuration) also carries
``X-Twilio-Webhooks-Signature-Settings: key=<key id>,algorithm=HMAC_SHA256``: the same URL is signed with that
key's secret and the named algorithm. Without that header (or without ``algorithm=`` in it) the algorithm is
HMAC-SHA1, as twilio-python's ``get_signature_algorithm`` reads it.

A request is genuine only if **both** hold: the HMAC matches the URL Twilio called, and the body hashes to
the ``bodySHA256`` the URL carries. The URL is the public sink URL (what Twilio was configured to call, not
what a proxy forwarded to us) plus the request's raw query string, byte for byte: re-encoding or re-sorting
the query (``%20`` versus ``+``, ``'`` versus ``%27``) breaks the signature.

This module is pure: no I/O, no environment, no clock. Failures raise :class:`SignatureCheckFailed` (a
:class:`~segment_bridge.exceptions.SignatureError`) whose ``check`` names the check that failed; messages
never carry the token, the signature or the body.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit, urlunsplit

from segment_bridge.exceptions import SignatureError

__all__ = [
    "BODY_HASH_PARAMETER",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "Algorithm",
    "SignatureCheck",
    "SignatureCheckFailed",
    "SignatureSettings",
    "SigningSecrets",
    "body_sha256",
    "compute_signature",
    "is_valid",
    "sign",
    "signed_url",
    "verify",
]

#: The request header Twilio puts the signature in.
SIGNATURE_HEADER = "X-Twilio-Signature"
#: The request header naming the shared key and algorithm of a shared-key signature.
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
#: The query parameter Twilio adds to the URL for JSON bodies.
BODY_HASH_PARAMETER = "bodySHA256"

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Non-UTF-8 bytes in a raw query survive the str round trip unchanged (same handler both ways).
_URL_ERRORS = "surrogateescape"


class Algorithm(StrEnum):
    """The signature algorithms Twilio names in ``X-Twilio-Webhooks-Signature-Settings``."""

    HMAC_SHA1 = "HMAC_SHA1"
    HMAC_SHA256 = "HMAC_SHA256"


_DIGESTS = {Algorithm.HMAC_SHA1: "sha1", Algorithm.HMAC_SHA256: "sha256"}


class SignatureCheck(StrEnum):
    """The check a request failed; also the ``check`` label of the rejection metric."""

    MISSING_HEADER = "missing_header"
    UNKNOWN_ALGORITHM = "unknown_algorithm"
    UNKNOWN_KEY = "unknown_key"
    MISSING_BODY_HASH = "missing_body_hash"
    BODY_HASH_MISMATCH = "body_hash_mismatch"
    SIGNATURE_MISMATCH = "signature_mismatch"


_MESSAGES = {
    SignatureCheck.MISSING_HEADER: f"the request has no {SIGNATURE_HEADER} header",
    SignatureCheck.UNKNOWN_ALGORITHM: (
        f"{SIGNATURE_SETTINGS_HEADER} names an algorithm other than "
        f"{Algorithm.HMAC_SHA1} and {Algorithm.HMAC_SHA256}: upgrade segment-bridge if Twilio added one"
    ),
    SignatureCheck.UNKNOWN_KEY: (
        "no secret is configured for the key the request is signed with (the shared key id its "
        f"{SIGNATURE_SETTINGS_HEADER} names, or the Auth Token when it names none)"
    ),
    SignatureCheck.MISSING_BODY_HASH: f"the URL has no {BODY_HASH_PARAMETER} query parameter",
    SignatureCheck.BODY_HASH_MISMATCH: f"the body does not hash to the URL's {BODY_HASH_PARAMETER}",
    SignatureCheck.SIGNATURE_MISMATCH: (
        f"{SIGNATURE_HEADER} does not match the URL: check the public URL and the Primary Auth Token (or shared key)"
    ),
}


class SignatureCheckFailed(SignatureError):
    """A request failed one signature check; ``check`` says which. Never carries the token or the body."""

    def __init__(self, check: SignatureCheck) -> None:
        self.check = check
        super().__init__(f"{check}: {_MESSAGES[check]}")


@dataclass(frozen=True, slots=True)
class SignatureSettings:
    """What ``X-Twilio-Webhooks-Signature-Settings`` names.

    ``key_id`` is the shared key's id (``None``: the Auth Token); ``algorithm`` is as written, upper-cased
    (twilio-python compares it case-insensitively).
    """

    key_id: str | None
    algorithm: str

    @classmethod
    def parse(cls, header: str | None) -> SignatureSettings:
        """Read the header as twilio-python does.

        ``name=value`` parts separated by commas, blanks around them ignored; a missing or empty header, or no
        ``algorithm=`` in it, means HMAC-SHA1 (the Auth Token's).
        """
        key_id: str | None = None
        algorithm = ""
        for part in (header or "").split(","):
            name, separator, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if not (separator and value):
                continue
            # The first value wins, as in twilio's get_signature_algorithm.
            if name == "algorithm" and not algorithm:
                algorithm = value.upper()
            elif name == "key" and key_id is None:
                key_id = value
        return cls(key_id, algorithm or Algorithm.HMAC_SHA1.value)


class SigningSecrets:
    """The secrets a request may be signed with.

    Auth Tokens (the primary, then a secondary during rotation) and shared keys by key id. Its repr shows how many
    tokens there are and the key ids, never a secret.
    """

    __slots__ = ("_shared_keys", "_tokens")

    def __init__(
        self, auth_tokens: Iterable[str | bytes] = (), shared_keys: Mapping[str, str | bytes] | None = None
    ) -> None:
        """Hold the secrets.

        Raises:
            ValueError: a secret is empty or blank (anyone can compute an HMAC under it); never shows a secret.
        """
        self._tokens = tuple(_secret_bytes(token) for token in auth_tokens)
        self._shared_keys = {key_id: _secret_bytes(secret) for key_id, secret in (shared_keys or {}).items()}

    def __repr__(self) -> str:
        return f"SigningSecrets(auth_tokens={len(self._tokens)}, shared_keys={sorted(self._shared_keys)!r})"

    def __bool__(self) -> bool:
        return bool(self._tokens or self._shared_keys)

    def for_key(self, key_id: str | None) -> tuple[bytes, ...]:
        """The secrets to try for a request naming ``key_id`` (``None``: the Auth Tokens); empty when unknown."""
        if key_id is None:
            return self._tokens
        secret = self._shared_keys.get(key_id)
        return (secret,) if secret is not None else ()


def _key_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _secret_bytes(secret: str | bytes) -> bytes:
    key = _key_bytes(secret)
    if not key.strip():
        raise ValueError("a blank secret cannot verify a signature: anyone can compute an HMAC under it")
    return key


def body_sha256(body: bytes) -> str:
    """Return the lower-case hex SHA-256 of a raw body, as Twilio puts it in ``bodySHA256``."""
    return hashlib.sha256(body).hexdigest()


def compute_signature(url: str, token: str | bytes, algorithm: Algorithm = Algorithm.HMAC_SHA1) -> str:
    """Return ``base64(HMAC(token, url))``, the ``X-Twilio-Signature`` of a JSON request to ``url``.

    ``token`` is the Auth Token, or a shared key's secret; ``algorithm`` HMAC-SHA1 (the Auth Token's) or
    HMAC-SHA256.
    """
    digest = hmac.digest(_key_bytes(token), url.encode("utf-8", _URL_ERRORS), _DIGESTS[algorithm])
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def signed_url(public_url: str, raw_query: str | bytes) -> str:
    """Rebuild the URL Twilio signed from the configured public sink URL and the request's raw query string.

    The public URL's own query (if any) and user-info (Basic auth credentials, which never reach the request
    line) are dropped: the raw query already holds the destination's query plus ``bodySHA256``, unchanged.

    Args:
        public_url: the sink destination as configured in Twilio, e.g. ``https://bridge.example.com/events``.
        raw_query: the query string exactly as received, without the ``?`` (ASGI ``scope["query_string"]``).

    Returns:
        The URL to verify: ``public_url``'s path, ``?``, the raw query (no ``?`` when the query is empty).
    """
    base = _signed_base(public_url)
    query = raw_query.decode("utf-8", _URL_ERRORS) if isinstance(raw_query, bytes) else raw_query
    return f"{base}?{query}" if query else base


@functools.lru_cache(maxsize=16)
def _signed_base(public_url: str) -> str:
    # A server has one public URL: parse it once, not on every request.
    parts = urlsplit(public_url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _port_variants(url: str) -> tuple[str, str]:
    """Return ``url`` without its port and with its port (the scheme's default if none).

    Twilio is inconsistent about the port it signs over (it drops it for HTTPS), so its own validator accepts
    either form; we do the same. Only the authority is rebuilt: the path and query stay byte for byte.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, url
    authority_end = len(rest)
    for delimiter in "/?#":
        index = rest.find(delimiter)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, hostport = authority.rpartition("@")
    prefix = f"{scheme}{sep}{userinfo}{at}"
    host, colon, port = hostport.rpartition(":")
    # A colon inside brackets belongs to an IPv6 literal, not to a port.
    if not colon or "]" in port or not port.isdigit():
        host, port = hostport, ""
    default = _DEFAULT_PORTS.get(scheme.lower())
    with_port = f"{host}:{port}" if port else (f"{host}:{default}" if default else host)
    return f"{prefix}{host}{tail}", f"{prefix}{with_port}{tail}"


def _signed_forms(url: str) -> Iterator[str]:
    """The URL as received, then its other port forms; the variants are built only if the first one fails."""
    yield url
    yield from (variant for variant in dict.fromkeys(_port_variants(url)) if variant != url)


def _query_of(url: str) -> str:
    return url.partition("?")[2].partition("#")[0]


def _claimed_body_hash(query: str) -> str | None:
    """The first non-empty ``bodySHA256`` value of a query, percent-decoded: what twilio's validator reads.

    That is ``parse_qs(query).get("bodySHA256")[0]``; a query with nothing to decode (Twilio's own: hex digits and
    the destination's plain parameters) is split directly, which costs a fraction of ``parse_qs``.
    """
    if "%" in query or "+" in query:
        values = parse_qs(query, errors=_URL_ERRORS).get(BODY_HASH_PARAMETER)
        return values[0] if values else None
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if value and name == BODY_HASH_PARAMETER:
            return value
    return None


def verify(
    url: str,
    body: bytes,
    signature: str | None,
    secrets: SigningSecrets | str | bytes,
    settings_header: str | None = None,
) -> None:
    """Check a JSON request's ``X-Twilio-Signature`` and ``bodySHA256``.

    Comparisons are constant time and over the whole signature: a truncated or over-long one never matches. The
    HMAC is checked before the body hash, so a forged request costs no hashing of a large body.

    Args:
        url: the full URL Twilio called, query included (see :func:`signed_url`).
        body: the raw request body, undecoded.
        signature: the ``X-Twilio-Signature`` header value, or ``None`` when absent.
        secrets: the secrets the request may be signed with; a ``str`` or ``bytes`` is one Auth Token.
        settings_header: the ``X-Twilio-Webhooks-Signature-Settings`` header value, or ``None`` when absent
            (an Auth Token signature, HMAC-SHA1).

    Raises:
        SignatureCheckFailed: naming the first check that failed (missing header, unknown algorithm, unknown key,
            missing ``bodySHA256``, signature mismatch, body hash mismatch).
        ValueError: ``secrets`` is one blank token.
    """
    if not signature:
        raise SignatureCheckFailed(SignatureCheck.MISSING_HEADER)
    if settings_header:
        named = SignatureSettings.parse(settings_header)
        try:
            algorithm = Algorithm(named.algorithm)
        except ValueError:
            raise SignatureCheckFailed(SignatureCheck.UNKNOWN_ALGORITHM) from None
        key_id = named.key_id
    else:
        algorithm, key_id = Algorithm.HMAC_SHA1, None
    keys = (_secret_bytes(secrets),) if isinstance(secrets, str | bytes) else secrets.for_key(key_id)
    if not keys:
        raise SignatureCheckFailed(SignatureCheck.UNKNOWN_KEY)
    claimed = _claimed_body_hash(_query_of(url))
    if not claimed:
        raise SignatureCheckFailed(SignatureCheck.MISSING_BODY_HASH)
    given = signature.encode("utf-8", _URL_ERRORS)
    # The primary secret and the URL as received are tried first (the common case costs one HMAC); another secret
    # or port form only when it fails. Each comparison is constant time over the full lengths; the timing can only
    # tell which secret and port form matched, which is no secret.
    if not any(
        hmac.compare_digest(compute_signature(variant, key, algorithm).encode(), given)
        for key in keys
        for variant in _signed_forms(url)
    ):
        raise SignatureCheckFailed(SignatureCheck.SIGNATURE_MISMATCH)
    if not hmac.compare_digest(body_sha256(body).encode(), claimed.encode("utf-8", _URL_ERRORS)):
        raise SignatureCheckFailed(SignatureCheck.BODY_HASH_MISMATCH)


def is_valid(
    url: str,
    body: bytes,
    signature: str | None,
    secrets: SigningSecrets | str | bytes,
    settings_header: str | None = None,
) -> bool:
    """Return whether :func:`verify` accepts the request (for callers that only need a yes or no)."""
    try:
        verify(url, body, signature, secrets, settings_header)
    except SignatureCheckFailed:
        return False
    return True


def sign(url: str, body: bytes, token: str | bytes, algorithm: Algorithm = Algorithm.HMAC_SHA1) -> tuple[str, str]:
    """Sign a request as Twilio does, for tests and benchmarks.

    Args:
        url: the sink URL, with or without a query of its own.
        body: the raw body to send.
        token: the Auth Token (or shared key secret) to sign with.
        algorithm: HMAC-SHA1 (Auth Token signatures) or HMAC-SHA256.

    Returns:
        ``(url_with_bodySHA256, signature)``: the URL to post to and the ``X-Twilio-Signature`` value.
    """
    separator = "?" if "?" not in url else "" if url.endswith(("?", "&")) else "&"
    full = f"{url}{separator}{BODY_HASH_PARAMETER}={body_sha256(body)}"
    return full, compute_signature(full, token, algorithm)
