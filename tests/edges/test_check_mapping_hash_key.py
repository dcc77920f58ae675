"""check-mapping: a mapping that hashes phone numbers but has no key at hand is a finding, not "valid"."""

from __future__ import annotations

from pathlib import Path

import pytest

from segment_bridge.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "mappings" / "twilio_voice.toml"


@pytest.fixture
def hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SEGMENT_BRIDGE_HASH_KEY", raising=False)
    path = tmp_path / "hashing.toml"
    path.write_text(SHIPPED.read_text().replace("phone_numbers = false", "phone_numbers = true"))
    return path


def test_without_a_key_it_says_how_to_pass_one(hashing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-mapping", str(hashing)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0].startswith(f"{hashing}: hashing.phone_numbers is on but no hash key is given")
    assert "SEGMENT_BRIDGE_HASH_KEY" in err[0] and "--hash-key-file" in err[0]
    assert err[-1] == f"segment-bridge: {hashing}: valid, 1 lint finding(s)"


def test_the_finding_is_what_translate_would_have_failed_on(hashing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["translate", "--mapping", str(hashing), str(ROOT / "examples" / "events.jsonl")]) == 2
    assert "no hash key was given" in capsys.readouterr().err


def test_a_key_in_the_environment_is_enough(
    hashing: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEGMENT_BRIDGE_HASH_KEY", "k3y-value")
    assert main(["check-mapping", str(hashing)]) == 0
    err = capsys.readouterr().err
    assert "valid; 4 event types" in err and "k3y-value" not in err


def test_a_key_file_is_enough(hashing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "key"
    key.write_text("k3y-value\n")
    assert main(["check-mapping", "--hash-key-file", str(key), str(hashing)]) == 0
    assert "k3y-value" not in capsys.readouterr().err


def test_an_unreadable_key_file_is_a_usage_error(
    hashing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-mapping", "--hash-key-file", str(tmp_path / "missing"), str(hashing)]) == 2
    assert "cannot read the hash key file" in capsys.readouterr().err


def test_a_mapping_without_hashing_needs_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENT_BRIDGE_HASH_KEY", raising=False)
    assert main(["check-mapping", str(SHIPPED)]) == 0
