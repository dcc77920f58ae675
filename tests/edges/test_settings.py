"""segment_bridge.settings: write key from the environment or a file, host and region, mapping path."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.settings import DEFAULT_HOST, EU_HOST, Settings

KEY = "wk_settings_S3cr3t"


def test_defaults_without_anything():
    settings = Settings.from_env({})
    assert settings == Settings(write_key=None, host=DEFAULT_HOST, mapping=None)


def test_write_key_from_the_environment_is_masked():
    settings = Settings.from_env({"SEGMENT_WRITE_KEY": KEY})
    assert settings.require_write_key().get_secret_value() == KEY
    for text in (repr(settings), str(settings), repr(settings.write_key), str(settings.write_key)):
        assert KEY not in text


def test_write_key_from_a_file_is_stripped(tmp_path):
    path = tmp_path / "key"
    path.write_text(f"  {KEY}\n")
    from_env = Settings.from_env({"SEGMENT_WRITE_KEY_FILE": str(path)})
    from_arg = Settings.from_env({}, write_key_file=path)
    assert from_env.write_key == from_arg.write_key == SecretStr(KEY)


def test_explicit_arguments_win_over_the_environment(tmp_path):
    environ = {
        "SEGMENT_WRITE_KEY": "from-env",
        "SEGMENT_HOST": "https://proxy.example",
        "SEGMENT_BRIDGE_MAPPING": "env.toml",
    }
    settings = Settings.from_env(environ, write_key=KEY, host="https://other.example/", mapping=tmp_path / "m.toml")
    assert settings.require_write_key().get_secret_value() == KEY
    assert settings.host == "https://other.example"
    assert settings.mapping == tmp_path / "m.toml"
    assert Settings.from_env(environ).mapping == Path("env.toml")


def test_missing_write_key_is_a_one_line_configuration_error():
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"SEGMENT_WRITE_KEY": ""}, require_write_key=True)
    message = str(info.value)
    assert "\n" not in message
    assert "SEGMENT_WRITE_KEY" in message
    with pytest.raises(ConfigurationError):
        Settings.from_env({}).require_write_key()


def test_both_key_sources_at_once_is_an_error(tmp_path):
    with pytest.raises(ConfigurationError, match="not both"):
        Settings.from_env({"SEGMENT_WRITE_KEY": KEY, "SEGMENT_WRITE_KEY_FILE": str(tmp_path / "k")})


@pytest.mark.parametrize("content", ["", "\n  \n", "two words"])
def test_bad_key_file_content_is_refused_without_echoing_it(tmp_path, content):
    path = tmp_path / "key"
    path.write_text(content)
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"SEGMENT_WRITE_KEY_FILE": str(path)})
    assert str(path) in str(info.value)
    assert "words" not in str(info.value)


def test_unreadable_key_file_names_the_path(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read the write key file"):
        Settings.from_env({}, write_key_file=tmp_path / "missing")


@pytest.mark.parametrize(
    ("environ", "kwargs", "host"),
    [
        ({"SEGMENT_REGION": "eu"}, {}, EU_HOST),
        ({}, {"region": "EU"}, EU_HOST),
        ({}, {"region": "us"}, DEFAULT_HOST),
        ({"SEGMENT_HOST": "http://127.0.0.1:8080/"}, {}, "http://127.0.0.1:8080"),
        ({"SEGMENT_REGION": "eu", "SEGMENT_HOST": EU_HOST + "/"}, {}, EU_HOST),
        ({"SEGMENT_HOST": "https://proxy.example"}, {"region": "eu"}, None),
    ],
)
def test_host_and_region(environ, kwargs, host):
    if host is None:
        with pytest.raises(ConfigurationError, match="contradicts"):
            Settings.from_env(environ, **kwargs)
    else:
        assert Settings.from_env(environ, **kwargs).host == host


@pytest.mark.parametrize(
    "bad", ["api.segment.io", "ftp://api.segment.io", "https://user:pw@api.segment.io", "https://x.example/?k=1"]
)
def test_bad_hosts_are_refused(bad):
    with pytest.raises(ConfigurationError, match="Segment host") as info:
        Settings.from_env({"SEGMENT_HOST": bad})
    assert ":pw@" not in str(info.value)  # credentials in a URL are not echoed back


def test_unknown_region():
    with pytest.raises(ConfigurationError, match="unknown Segment region"):
        Settings.from_env({}, region="mars")


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.host = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:http", "Port is not a number"),
        ("http://127.0.0.1:0", "port 0"),
    ],
)
def test_hosts_that_do_not_parse_are_one_line_errors_naming_the_option(bad, reason):
    with pytest.raises(ConfigurationError, match=r"Segment host \(SEGMENT_HOST\) is not a valid URL: " + reason):
        Settings.from_env({"SEGMENT_HOST": bad})
    with pytest.raises(ConfigurationError, match=r"\(--segment-host\)") as info:
        Settings.from_env({}, host="http://user:pw@" + bad.removeprefix("http://"))
    assert ":pw@" not in str(info.value)


@pytest.mark.parametrize("host", ["https://wk_live_123:s3cretPassw0rd", "wk_live_123:s3cretPassw0rd"])
def test_a_host_that_looks_like_credentials_is_not_echoed(host):
    with pytest.raises(ConfigurationError, match="Segment host") as info:
        Settings.from_env({"SEGMENT_HOST": host})
    assert "s3cretPassw0rd" not in str(info.value) and "wk_live_123" not in str(info.value)


def test_a_byte_order_mark_in_the_key_file_is_not_part_of_the_key(tmp_path):
    path = tmp_path / "key"
    path.write_text(KEY + "\n", encoding="utf-8-sig")
    settings = Settings.from_env({"SEGMENT_WRITE_KEY_FILE": str(path)})
    assert settings.write_key is not None
    assert settings.write_key.get_secret_value() == KEY
