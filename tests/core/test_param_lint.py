"""mapping lint: a `param:` source must name a status-callback parameter Twilio documents, or be declared known."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from segment_bridge import MappingError
from segment_bridge._resources import packaged_mapping
from segment_bridge.catalog import STATUS_CALLBACK_PARAMETERS
from segment_bridge.cli import main
from segment_bridge.mapping import load_mapping, parse_mapping

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "mappings" / "twilio_voice.toml"


def _document(**changes: Any) -> dict[str, Any]:
    document = tomllib.loads(packaged_mapping().read_text(encoding="utf-8"))
    document.update(changes)
    return document


def _findings(document: dict[str, Any]) -> list[str]:
    return parse_mapping(document).lint()


def test_the_packaged_mapping_reads_only_documented_parameters() -> None:
    assert load_mapping().warnings == ()


def test_the_sed_reproducer_of_the_issue_is_a_finding_with_a_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "t.toml"
    sed = subprocess.run(["sed", "s/param:CallStatus/param:CallStatsu/", str(SHIPPED)], capture_output=True, check=True)
    typo.write_bytes(sed.stdout)
    code = main(["check-mapping", str(typo)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{typo}: properties.call_status.from: 'param:CallStatsu' is not a status-callback parameter" in err
    assert "(did you mean 'param:CallStatus'?)" in err
    assert 'add "CallStatsu" to [lint] known_params' in err
    assert err.splitlines()[-1] == f"segment-bridge: {typo}: valid, 1 lint finding(s)"


def test_the_finding_is_also_a_warning_where_the_mapping_is_used(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(SHIPPED.read_text().replace("param:Direction", "param:Direciton"))
    (finding,) = load_mapping(path).warnings
    assert finding.startswith("properties.direction.from: 'param:Direciton'")
    assert "did you mean 'param:Direction'?" in finding


@pytest.mark.parametrize(
    ("identity", "place"),
    [
        ({"anonymous_id": ["param:CalSid"]}, "identity.anonymous_id"),
        ({"anonymous_id": ["data:sid"], "user_id": ["param:CalSid"]}, "identity.user_id"),
    ],
)
def test_identity_sources_are_linted_too(identity: dict[str, list[str]], place: str) -> None:
    (finding,) = _findings(_document(identity=identity))
    assert finding.startswith(f"{place}: 'param:CalSid'") and "did you mean 'param:CallSid'?" in finding


def test_snake_case_spellings_are_known_and_their_typos_guessed() -> None:
    properties = {"status": {"from": ["param:call_status"]}, "sip": {"from": ["param:sip_respons_code"]}}
    (finding,) = _findings(_document(properties=properties))
    assert finding.startswith("properties.sip.from: 'param:sip_respons_code'")
    assert "did you mean 'param:sip_response_code'?" in finding


def test_every_documented_parameter_in_either_spelling_passes() -> None:
    names = sorted(STATUS_CALLBACK_PARAMETERS)
    snake = [re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in names]
    properties = {f"p{i}": {"from": [f"param:{name}"]} for i, name in enumerate([*names, *snake])}
    assert _findings(_document(properties=properties)) == []


def test_a_name_far_from_any_parameter_gets_no_guess() -> None:
    (finding,) = _findings(_document(identity={"anonymous_id": ["data:sid"], "user_id": ["param:CustomerId"]}))
    assert "did you mean" not in finding
    assert 'add "CustomerId" to [lint] known_params' in finding


def test_known_params_silences_a_parameter_twilio_added_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new.toml"
    path.write_text(
        SHIPPED.read_text().replace(
            'call_sid = { from = ["param:CallSid", "data:sid"] }',
            "call_sid = { from = "
            '["param:CallSid", "data:sid"] }\nnew_param = { from = ["param:NewParam"] }\nnew_snake = { from = '
            '["param:new_param"] }',
        )
        + '\n[lint]\nknown_params = ["NewParam"]\n'
    )
    assert load_mapping(path).warnings == ()
    assert main(["check-mapping", str(path)]) == 0
    assert "valid; 4 event types, 22 properties" in capsys.readouterr().err


def test_lint_keys_are_checked_like_every_other_key() -> None:
    with pytest.raises(MappingError, match=r"lint\.known_param: unknown key \(did you mean 'known_params'\?\)"):
        parse_mapping(_document(lint={"known_param": ["X"]}))
    with pytest.raises(MappingError, match=r"lint\.known_params: 'param:X' is not a parameter name"):
        parse_mapping(_document(lint={"known_params": ["param:X"]}))
    with pytest.raises(MappingError, match=r"lnit: unknown key \(did you mean 'lint'\?\)"):
        parse_mapping(_document(lnit={"known_params": ["X"]}))


def test_check_mapping_runs_as_a_command(tmp_path: Path) -> None:
    typo = tmp_path / "t.toml"
    typo.write_text(SHIPPED.read_text().replace("param:CallStatus", "param:CallStatsu"))
    done = subprocess.run(
        [sys.executable, "-m", "segment_bridge", "check-mapping", str(typo)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "did you mean 'param:CallStatus'?" in done.stderr
