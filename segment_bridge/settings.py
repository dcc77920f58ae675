"""Settings of the delivery edges, read in one place from explicit arguments and an environment mapping.

Nothing here reads ``os.environ`` or a ``.env`` file on its own: callers pass the mapping (the CLI passes
``os.environ``, tests pass a dict). Explicit arguments win over the environment.

=========================  ==================================================================================
``SEGMENT_WRITE_KEY``      the source's write key
``SEGMENT_WRITE_KEY_FILE`` a file holding the write key (keeps it out of shell history and process listings)
``SEGMENT_HOST``           base URL, default ``https://api.segment.io``
``SEGMENT_REGION``         ``us`` or ``eu`` (``eu`` selects ``https://events.eu1.segmentapis.com``)
``SEGMENT_BRIDGE_MAPPING`` path of a mapping file replacing the packaged default
``SEGMENT_BRIDGE_MAX_RATE`` events/s sent to Segment at most, 0 for no limit (:func:`max_rate_setting`)
=========================  ==================================================================================

The secrets ``serve`` verifies signatures with are read by :func:`secret_setting` (``TWILIO_AUTH_TOKEN``,
``TWILIO_SECONDARY_AUTH_TOKEN``, each also as ``<NAME>_FILE``) and :func:`shared_keys_setting`
(``SEGMENT_BRIDGE_SHARED_KEYS`` or ``SEGMENT_BRIDGE_SHARED_KEYS_FILE``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from segment_bridge.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_HOST",
    "EU_HOST",
    "MAX_RATE_VARIABLE",
    "REGION_HOSTS",
    "REPLAY_MAX_RATE",
    "Settings",
    "max_rate_setting",
    "parse_max_rate",
    "parse_shared_keys",
    "read_secret_file",
    "secret_setting",
    "shared_keys_setting",
]

#: Segment's default (US) endpoint base.
DEFAULT_HOST = "https://api.segment.io"
#: Segment's EU endpoint base. An EU workspace posting to the US host sees no error, and no events.
EU_HOST = "https://events.eu1.segmentapis.com"
#: ``--region`` / ``SEGMENT_REGION`` values and the base URL each selects.
REGION_HOSTS: Mapping[str, str] = {"us": DEFAULT_HOST, "eu": EU_HOST}


@dataclass(frozen=True, slots=True)
class Settings:
    """Where and how to deliver.

    Attributes:
        write_key: the Segment source's write key, masked in every repr; ``None`` when not configured
            (fine for dry runs and file output; :meth:`require_write_key` raises otherwise).
        host: Segment base URL without a trailing slash; ``/v1/batch`` is appended when posting.
        mapping: a mapping file replacing the packaged default, or ``None``.
    """

    write_key: SecretStr | None = None
    host: str = DEFAULT_HOST
    mapping: Path | None = None

    def require_write_key(self) -> SecretStr:
        """Return the write key, or raise a one-line :class:`ConfigurationError` saying how to provide it."""
        if self.write_key is None:
            raise ConfigurationError(
                "no Segment write key: set SEGMENT_WRITE_KEY or SEGMENT_WRITE_KEY_FILE "
                "(or use --dry-run / --out to send nothing)"
            )
        return self.write_key

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        write_key: str | SecretStr | None = None,
        write_key_file: str | Path | None = None,
        host: str | None = None,
        region: str | None = None,
        mapping: str | Path | None = None,
        require_write_key: bool = False,
    ) -> Settings:
        """Build settings from explicit values first, then ``environ``.

        Args:
            environ: environment variables (pass ``os.environ`` or a dict).
            write_key: the write key itself (wins over the environment).
            write_key_file: a file whose content, stripped, is the write key.
            host: Segment base URL (``--segment-host``).
            region: ``us`` or ``eu`` (``--region``); conflicts with a different explicit ``host``.
            mapping: mapping file path (``--mapping``).
            require_write_key: raise when no write key is found (anything but a dry run or file output).

        Raises:
            ConfigurationError: a one-line message naming the setting, never its secret value.
        """
        key = _write_key(environ, write_key, write_key_file)
        if require_write_key and key is None:
            Settings().require_write_key()
        mapping_value = mapping if mapping is not None else environ.get("SEGMENT_BRIDGE_MAPPING") or None
        return cls(
            write_key=key,
            host=_host(environ, host, region),
            mapping=Path(mapping_value) if mapping_value is not None else None,
        )


def _write_key(
    environ: Mapping[str, str], write_key: str | SecretStr | None, write_key_file: str | Path | None
) -> SecretStr | None:
    if write_key is not None:
        value = write_key.get_secret_value() if isinstance(write_key, SecretStr) else write_key
        return _non_empty(value, "the write key argument")
    if write_key_file is None:
        env_key = environ.get("SEGMENT_WRITE_KEY", "")
        env_file = environ.get("SEGMENT_WRITE_KEY_FILE", "")
        if env_key and env_file:
            raise ConfigurationError("set SEGMENT_WRITE_KEY or SEGMENT_WRITE_KEY_FILE, not both")
        if env_key:
            return _non_empty(env_key, "SEGMENT_WRITE_KEY")
        if not env_file:
            return None
        write_key_file = env_file
    where = f"the write key file {str(write_key_file)!r}"
    return _non_empty(read_secret_file(write_key_file, "the write key file"), where)


def read_secret_file(path: str | Path, what: str) -> str:
    """Read a secret from a file (a write key, an auth token, a hash key), stripped of surrounding whitespace.

    Raises:
        ConfigurationError: one line naming ``what`` and the path, with the reason (missing, permission, empty),
            never the content.
    """
    try:
        # utf-8-sig: an editor's byte-order mark is not part of the secret (a key with one is refused as wrong).
        text = Path(path).read_text(encoding="utf-8-sig").strip()
    except (OSError, UnicodeDecodeError) as exc:
        # The class name of a decoding error is not for users, and its message would quote the secret's bytes.
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or "read error"
        raise ConfigurationError(f"cannot read {what} {str(path)!r}: {reason}") from None
    if not text:
        raise ConfigurationError(f"{what} {str(path)!r} is empty")
    return text


def secret_setting(environ: Mapping[str, str], name: str, *, file: str | Path | None = None) -> SecretStr | None:
    """A secret from ``file`` (an option, which wins), else ``name`` or ``<name>_FILE`` in ``environ``.

    Returns:
        The secret, stripped of surrounding whitespace, or ``None`` when none is set (an empty value is unset).

    Raises:
        ConfigurationError: both ``name`` and ``<name>_FILE`` are set, or the file cannot be read or is empty; the
            message names the setting, never the secret.
    """
    if file is not None:
        return SecretStr(read_secret_file(file, f"the {name} file"))
    value = environ.get(name, "").strip()
    path = environ.get(f"{name}_FILE", "").strip()
    if value and path:
        raise ConfigurationError(f"set {name} or {name}_FILE, not both")
    if path:
        value = read_secret_file(path, f"{name}_FILE")
    return SecretStr(value) if value else None


#: Environment variable holding ``serve``'s shared keys (``KEY_ID:SECRET,...``); ``..._FILE`` names a file of them.
SHARED_KEYS_VARIABLE = "SEGMENT_BRIDGE_SHARED_KEYS"


def shared_keys_setting(environ: Mapping[str, str], *, file: str | Path | None = None) -> dict[str, SecretStr]:
    """Shared keys by key id, from ``file`` (an option, which wins) or the environment.

    The environment is ``SEGMENT_BRIDGE_SHARED_KEYS`` or ``SEGMENT_BRIDGE_SHARED_KEYS_FILE`` (not both); see
    :func:`parse_shared_keys` for the format.

    Raises:
        ConfigurationError: one line naming the setting and the entry's position, never a secret.
    """
    where = SHARED_KEYS_VARIABLE
    if file is not None:
        where = f"the shared keys file {str(file)!r}"
        text = read_secret_file(file, "the shared keys file")
    else:
        text = environ.get(SHARED_KEYS_VARIABLE, "").strip()
        path = environ.get(f"{SHARED_KEYS_VARIABLE}_FILE", "").strip()
        if text and path:
            raise ConfigurationError(f"set {SHARED_KEYS_VARIABLE} or {SHARED_KEYS_VARIABLE}_FILE, not both")
        if path:
            where = f"{SHARED_KEYS_VARIABLE}_FILE {path!r}"
            text = read_secret_file(path, f"{SHARED_KEYS_VARIABLE}_FILE")
    return parse_shared_keys(text, where) if text else {}


def parse_shared_keys(text: str, where: str) -> dict[str, SecretStr]:
    """Parse ``KEY_ID:SECRET`` entries separated by commas or line breaks (blank entries are skipped).

    The key id is what Twilio names in ``X-Twilio-Webhooks-Signature-Settings: key=<key id>``; the secret is
    everything after the first colon. Neither may be empty or contain whitespace, and a key id may appear once.

    Raises:
        ConfigurationError: naming ``where`` and the entry's position (1-based), never its content, which may be
            a secret.
    """
    keys: dict[str, SecretStr] = {}
    entries = [entry.strip() for line in text.splitlines() for entry in line.split(",")]
    for position, entry in enumerate((entry for entry in entries if entry), start=1):
        key_id, colon, secret = entry.partition(":")
        key_id, secret = key_id.strip(), secret.strip()
        if not (colon and key_id and secret) or any(ch.isspace() for ch in key_id + secret):
            raise ConfigurationError(
                f"{where}: entry {position} is not KEY_ID:SECRET (a key id, a colon, the secret; "
                "entries separated by commas or line breaks)"
            )
        if key_id in keys:
            raise ConfigurationError(f"{where}: entry {position} repeats the key id of an earlier entry")
        keys[key_id] = SecretStr(secret)
    return keys


def _non_empty(value: str, where: str) -> SecretStr:
    # A trailing newline from `echo KEY > file` is not part of the key; inner whitespace would be an error.
    stripped = value.strip()
    if not stripped:
        raise ConfigurationError(f"{where} is empty")
    if any(ch.isspace() for ch in stripped):
        raise ConfigurationError(f"{where} contains whitespace; a write key is a single token")
    return SecretStr(stripped)


def _host(environ: Mapping[str, str], host: str | None, region: str | None) -> str:
    region_value = region if region is not None else environ.get("SEGMENT_REGION") or None
    host_value = host if host is not None else environ.get("SEGMENT_HOST") or None
    region_host: str | None = None
    if region_value is not None:
        region_host = REGION_HOSTS.get(region_value.strip().lower())
        if region_host is None:
            raise ConfigurationError(f"unknown Segment region {region_value!r}: use one of us, eu")
    if host_value is None:
        return region_host or DEFAULT_HOST
    checked = _check_url(host_value, "--segment-host" if host is not None else "SEGMENT_HOST")
    if region_host is not None and checked != region_host:
        raise ConfigurationError(
            f"Segment host {checked!r} contradicts region {region_value!r} ({region_host}); give one of them"
        )
    return checked


def _url_problem(error: ValueError) -> str:
    text = str(error)
    if "IPv6" in text:
        return "Invalid IPv6 URL"
    if "out of range" in text:
        return "Port out of range 1-65535"
    if "Port" in text:
        return "Port is not a number"
    return "it does not parse"


def _check_url(value: str, where: str) -> str:
    stripped = value.strip().rstrip("/")
    try:
        parts = urlsplit(stripped)
        # Reading the port validates it: not a number, or outside 0-65535, raises here rather than at the first post.
        port = parts.port
    except ValueError as error:
        # A fixed reason, never the value nor urllib's text, which quotes the port part: `key:secret` would leak.
        raise ConfigurationError(f"Segment host ({where}) is not a valid URL: {_url_problem(error)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"Segment host ({where}) must be an http(s) URL with a host name, like {DEFAULT_HOST}")
    if port == 0:
        raise ConfigurationError(f"Segment host ({where}) is not a valid URL: port 0 cannot be connected to")
    if parts.username or parts.password or parts.query or parts.fragment:
        # Credentials in the URL would end up in logs; the write key goes in the Authorization header.
        raise ConfigurationError("Segment host must be a plain base URL, without credentials, query or fragment")
    return stripped


#: Environment variable of the most events per second sent to Segment (``replay``, ``serve``, the Lambda).
MAX_RATE_VARIABLE = "SEGMENT_BRIDGE_MAX_RATE"
#: ``replay``'s default: half of Segment's 1,000 events/s per workspace, so a backfill leaves the other half to live
#: traffic (``serve``, other sources). ``serve`` and the Lambda default to no limit: live traffic comes at Twilio's
#: pace.
REPLAY_MAX_RATE = 500.0


def parse_max_rate(text: str, where: str = MAX_RATE_VARIABLE) -> float:
    """Events per second from ``text``: a number, 0 or more (0: no limit).

    Raises:
        ConfigurationError: not a finite number, or negative; the message names ``where``.
    """
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{where} must be a number of events per second, 0 for no limit; got {text!r}")
    return value


def max_rate_setting(environ: Mapping[str, str], value: float | None = None, *, default: float = 0.0) -> float:
    """The events/s limit: ``value`` (an option, which wins), else ``SEGMENT_BRIDGE_MAX_RATE``, else ``default``.

    Raises:
        ConfigurationError: the variable is set to something that is not a number of events per second.
    """
    if value is not None:
        return value
    text = environ.get(MAX_RATE_VARIABLE, "").strip()
    return parse_max_rate(text) if text else default
