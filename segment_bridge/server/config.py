"""The receiver's options: :class:`ServerConfig` and its defaults, from the environment or from arguments.

Secrets (auth tokens, shared keys, the hash key) are held masked; the public URL is kept without user-info. The
command line's options that fill it live in :mod:`segment_bridge.cli.serve`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.track import MAX_BATCH_MESSAGES

if TYPE_CHECKING:
    from segment_bridge.signature import SigningSecrets

#: Largest request body accepted, in bytes (413 above it).
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
#: Seconds a request may spend delivering, retries included: Twilio waits at most 5 s for an answer.
DEFAULT_DELIVERY_BUDGET = 4.0
#: Requests handled at once before answering 429.
DEFAULT_MAX_CONCURRENCY = 1000
#: Seconds a request may take to arrive whole (headers and body), from its first byte or its connection's opening.
#: Twilio waits 5 s for the whole answer, and its requests arrive in milliseconds.
DEFAULT_READ_TIMEOUT = 5.0
#: Bytes held at once by requests still arriving, before the longest-arriving one is closed (at least 4 bodies).
DEFAULT_MAX_ARRIVING_BYTES = 64 * 1024 * 1024
#: A partial batch waits this long for company when nothing else is in flight.
DEFAULT_LINGER = 0.005
#: ...and at most this long when other batches are in flight (their completion flushes it sooner).
DEFAULT_MAX_LINGER = 0.02
#: Batches posted to Segment at once (one thread each).
DEFAULT_MAX_IN_FLIGHT = 4
#: Messages per Segment request. Every request waits for its own batch, so under load a batch goes as soon as this
#: many events wait: 30 keeps Segment requests per event near 0.04 (at most 1/30) while no request queues behind a
#: long batch; measured against 500 at 100 clients: +18-20% requests/s, p50 -20 ms (benchmarks/README.md §7.4).
DEFAULT_BATCH_MESSAGES = 30
#: Recently delivered messageIds remembered for redeliveries.
DEFAULT_DEDUP_CACHE = 100_000
#: Where ``segment-bridge serve`` keeps refused events unless told otherwise (relative to its working directory):
#: a refusal answered 200 must be kept somewhere it can be replayed from, not only in a log line.
DEFAULT_DEAD_LETTER_FILE = "segment-bridge-refused.jsonl"
#: Bytes of a malformed body kept in its dead-letter record.
DEFAULT_DEAD_LETTER_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Options of the webhook receiver (Segment delivery options are in :class:`~segment_bridge.settings.Settings`).

    Attributes:
        public_url: the sink destination as configured in Twilio (``https://host/events``); the signature is
            checked over it plus each request's raw query string. Required unless ``insecure_no_signature``.
            Basic-auth user-info (``https://user:password@host/...``) is dropped here: Twilio signs the URL
            without it, so the password is never needed and never kept (nor in ``repr`` or worker options).
        auth_token: the Primary Auth Token of the account owning the sink (``TWILIO_AUTH_TOKEN``); masked.
        secondary_auth_token: a second Auth Token accepted as well, while rotating (``TWILIO_SECONDARY_AUTH_TOKEN``);
            masked.
        shared_keys: ``(key id, secret)`` pairs for requests signed with a shared key (Twilio's Webhooks
            configuration), which name the key id in ``X-Twilio-Webhooks-Signature-Settings``
            (``SEGMENT_BRIDGE_SHARED_KEYS``); a mapping is accepted too. Not in the repr.
        insecure_no_signature: accept unsigned requests (local testing only; logged loudly at start).
        max_body_size: bytes; larger bodies get 413.
        delivery_budget: seconds per request for delivery, retries included, before answering 503.
        max_concurrency: requests in progress at once before answering 429; only a complete request with a good
            signature takes one.
        read_timeout: seconds a request may take to arrive whole, headers and body (``serve`` closes the
            connection after that; see :mod:`segment_bridge._arrival`).
        max_connections: open connections before the one that has waited longest for a request is closed for a
            new one; ``None``: the file-descriptor limit less a reserve.
        max_arriving_bytes: bytes held by requests still arriving before the longest-arriving one is closed;
            ``None``: the larger of 64 MiB and 4 bodies of ``max_body_size``.
        linger: seconds a partial batch waits for more events when no batch is in flight.
        max_linger: seconds a partial batch waits at most while other batches are in flight.
        max_in_flight: Segment requests in flight at once.
        batch_messages: most messages per Segment request.
        dedup_cache_size: delivered messageIds remembered to answer redeliveries without Segment.
        dead_letter: JSON Lines file for refused events and malformed bodies; ``None`` logs them instead.
        dead_letter_body_limit: bytes of a malformed body kept in its dead-letter record.
        dead_letter_fsync: make a request's dead-letter records durable (``fsync``) before answering it; ``False``
            risks losing refused events answered 200 in a machine crash (for measuring what it costs).
        dry_run: send nothing; write each batch as a JSON line to ``out`` or standard output.
        out: with or without ``dry_run``, write batches to this file instead of Segment.
        hash_key: HMAC key for mappings that hash phone numbers (``SEGMENT_BRIDGE_HASH_KEY``); masked.
        segment_timeout: seconds to wait for one Segment answer; defaults to the delivery budget.
        max_rate: most events per second sent to Segment by this process (``SEGMENT_BRIDGE_MAX_RATE``); 0, the
            default, for no limit: live traffic arrives at Twilio's pace.
    """

    public_url: str | None = None
    auth_token: SecretStr | None = field(default=None, repr=False)
    secondary_auth_token: SecretStr | None = field(default=None, repr=False)
    shared_keys: tuple[tuple[str, SecretStr], ...] = field(default=(), repr=False)
    insecure_no_signature: bool = False
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    delivery_budget: float = DEFAULT_DELIVERY_BUDGET
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_connections: int | None = None
    max_arriving_bytes: int | None = None
    linger: float = DEFAULT_LINGER
    max_linger: float = DEFAULT_MAX_LINGER
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    batch_messages: int = DEFAULT_BATCH_MESSAGES
    dedup_cache_size: int = DEFAULT_DEDUP_CACHE
    dead_letter: Path | None = None
    dead_letter_body_limit: int = DEFAULT_DEAD_LETTER_BODY_LIMIT
    dead_letter_fsync: bool = True
    dry_run: bool = False
    out: Path | None = None
    hash_key: SecretStr | None = field(default=None, repr=False)
    segment_timeout: float | None = None
    max_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.max_body_size < 1 or self.max_concurrency < 1 or self.max_in_flight < 1:
            raise ConfigurationError("max body size, max concurrency and max in-flight must be at least 1")
        if not math.isfinite(self.max_rate) or self.max_rate < 0:
            raise ConfigurationError("max rate must be a number of events per second, 0 for no limit")
        if not 0 < self.delivery_budget <= 60:
            raise ConfigurationError("delivery budget must be between 0 and 60 seconds (Twilio waits 5 s)")
        if not 1 <= self.batch_messages <= MAX_BATCH_MESSAGES:
            raise ConfigurationError(f"batch size must be between 1 and {MAX_BATCH_MESSAGES}")
        if self.linger < 0 or self.max_linger < self.linger:
            raise ConfigurationError("linger must be >= 0 and max linger >= linger")
        if not 0 < self.read_timeout <= 300:
            raise ConfigurationError("read timeout must be between 0 and 300 seconds (Twilio waits 5 s)")
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigurationError("max connections must be at least 1")
        if self.max_arriving_bytes is not None and self.max_arriving_bytes < self.max_body_size:
            raise ConfigurationError("max arriving bytes must be at least the max body size")
        if self.public_url is not None:
            _check_public_url(self.public_url)
            object.__setattr__(self, "public_url", _without_user_info(self.public_url))
        for name, variable in (
            ("auth_token", "TWILIO_AUTH_TOKEN"),
            ("secondary_auth_token", "TWILIO_SECONDARY_AUTH_TOKEN"),
        ):
            token = getattr(self, name)
            if isinstance(token, str):
                token = SecretStr(token)
                object.__setattr__(self, name, token)
            # Anyone can compute an HMAC under a blank key: such a "secret" would let every forged request in.
            if token is not None and not token.get_secret_value().strip():
                raise ConfigurationError(f"{variable} is empty")
            # A token file of two lines (or a pasted "token # comment") would check every request against a key
            # Twilio never signs with: each one 403, which Twilio drops. Refuse it at start, as the write key is.
            if token is not None and any(ch.isspace() for ch in token.get_secret_value().strip()):
                raise ConfigurationError(f"{variable} contains whitespace; an Auth Token is a single token")
        keys = self.shared_keys.items() if isinstance(self.shared_keys, Mapping) else self.shared_keys
        object.__setattr__(
            self,
            "shared_keys",
            tuple((key_id, secret if isinstance(secret, SecretStr) else SecretStr(secret)) for key_id, secret in keys),
        )
        for position, (key_id, secret) in enumerate(self.shared_keys, start=1):
            if not (key_id.strip() and secret.get_secret_value().strip()):
                raise ConfigurationError(f"SEGMENT_BRIDGE_SHARED_KEYS: entry {position} has an empty key id or secret")

    def signing_secrets(self) -> SigningSecrets:
        """The secrets requests may be signed with: the Auth Token(s), primary first, and the shared keys."""
        from segment_bridge.signature import SigningSecrets

        tokens = [token.get_secret_value() for token in (self.auth_token, self.secondary_auth_token) if token]
        return SigningSecrets(tokens, {key_id: secret.get_secret_value() for key_id, secret in self.shared_keys})

    def check_security(self) -> None:
        """Raise :class:`ConfigurationError` unless signatures can be checked or checking is explicitly off."""
        if self.insecure_no_signature:
            return
        if self.secondary_auth_token is not None and self.auth_token is None:
            raise ConfigurationError("TWILIO_SECONDARY_AUTH_TOKEN is set without TWILIO_AUTH_TOKEN: set both")
        if self.auth_token is None and not self.shared_keys:
            raise ConfigurationError(
                "TWILIO_AUTH_TOKEN (or shared keys, SEGMENT_BRIDGE_SHARED_KEYS) is required to verify "
                "X-Twilio-Signature (or pass --insecure-no-signature for local testing)"
            )
        if self.public_url is None:
            raise ConfigurationError(
                "the public sink URL is required to verify X-Twilio-Signature: pass --public-url "
                "or set SEGMENT_BRIDGE_PUBLIC_URL to the destination configured in Twilio"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **explicit: Any) -> ServerConfig:
        """Build the config from explicit values (``None`` means unset) first, then ``environ``.

        Reads ``TWILIO_AUTH_TOKEN`` and ``TWILIO_SECONDARY_AUTH_TOKEN`` (each or its ``_FILE``),
        ``SEGMENT_BRIDGE_SHARED_KEYS`` (or ``_FILE``), ``SEGMENT_BRIDGE_PUBLIC_URL``, ``SEGMENT_BRIDGE_HASH_KEY`` and
        ``SEGMENT_BRIDGE_MAX_RATE``.
        The explicit ``auth_token_file``, ``secondary_auth_token_file`` and ``shared_keys_file`` (the ``--...-file``
        options) win over the environment; ``shared_keys`` may be given as ``KEY_ID:SECRET,...`` text.

        Signature checking is turned off only by an explicit ``insecure_no_signature=True`` (the
        ``--insecure-no-signature`` flag), never by the environment: a variable inherited from a ``.env`` file or a
        CI job would disable it silently.

        Raises:
            ConfigurationError: a value is invalid or a secret file unreadable (never echoing a secret).
        """
        from segment_bridge.settings import max_rate_setting, parse_shared_keys, secret_setting, shared_keys_setting

        values = {key: value for key, value in explicit.items() if value is not None}
        if "public_url" not in values and environ.get("SEGMENT_BRIDGE_PUBLIC_URL"):
            values["public_url"] = environ["SEGMENT_BRIDGE_PUBLIC_URL"].strip()
        for name, variable in (
            ("auth_token", "TWILIO_AUTH_TOKEN"),
            ("secondary_auth_token", "TWILIO_SECONDARY_AUTH_TOKEN"),
        ):
            file = values.pop(f"{name}_file", None)
            if name not in values:
                token = secret_setting(environ, variable, file=file)
                if token is not None:
                    values[name] = token
        keys_file = values.pop("shared_keys_file", None)
        if "shared_keys" not in values:
            values["shared_keys"] = shared_keys_setting(environ, file=keys_file)
        elif isinstance(values["shared_keys"], str):
            values["shared_keys"] = parse_shared_keys(values["shared_keys"], "the shared keys argument")
        if "hash_key" not in values and environ.get("SEGMENT_BRIDGE_HASH_KEY"):
            values["hash_key"] = SecretStr(environ["SEGMENT_BRIDGE_HASH_KEY"])
        values["max_rate"] = max_rate_setting(environ, values.get("max_rate"))
        for key in ("dead_letter", "out"):
            if key in values:
                values[key] = Path(values[key])
        return cls(**values)


def _check_public_url(url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"public URL must be an http(s) URL, got {parts.scheme or 'no'} scheme")
    if parts.fragment:
        raise ConfigurationError("public URL must not have a fragment")
    # Checked with the configuration, not when the app is built: `--workers` builds it in each worker.
    path = _route_path(url)
    if "{" in path or "}" in path:
        raise ConfigurationError("the path of the public URL must not contain '{' or '}'")


def _route_path(url: str) -> str:
    """The path a route for ``url`` matches: decoded, as routes match; empty is the root, as on the request line."""
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path) or "/"


def _without_user_info(url: str) -> str:
    """``url`` without ``user:password@``, everything else byte for byte (the signature is over those bytes)."""
    scheme, sep, rest = url.partition("://")
    authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    if "@" not in authority:
        return url
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{rest[authority_end:]}"


# --------------------------------------------------------------------------------------------------------------
