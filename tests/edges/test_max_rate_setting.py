"""SEGMENT_BRIDGE_MAX_RATE: the events/s limit of replay, serve and the Lambda, read in one place."""

from __future__ import annotations

import pytest

from segment_bridge.exceptions import ConfigurationError
from segment_bridge.settings import REPLAY_MAX_RATE, max_rate_setting, parse_max_rate


def test_the_option_wins_then_the_variable_then_the_default() -> None:
    environ = {"SEGMENT_BRIDGE_MAX_RATE": "250"}
    assert max_rate_setting(environ, 900.0, default=REPLAY_MAX_RATE) == 900.0
    assert max_rate_setting(environ, default=REPLAY_MAX_RATE) == 250.0
    assert max_rate_setting({}, default=REPLAY_MAX_RATE) == 500.0
    assert max_rate_setting({"SEGMENT_BRIDGE_MAX_RATE": " "}) == 0.0
    assert max_rate_setting({"SEGMENT_BRIDGE_MAX_RATE": "0"}, default=REPLAY_MAX_RATE) == 0.0


@pytest.mark.parametrize("text", ["fast", "-1", "inf", "nan", "1e400"])
def test_a_value_that_is_not_a_rate_is_one_line_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^SEGMENT_BRIDGE_MAX_RATE must be a number of events per second"):
        max_rate_setting({"SEGMENT_BRIDGE_MAX_RATE": text})
    with pytest.raises(ConfigurationError, match=r"^--max-rate must be"):
        parse_max_rate(text, "--max-rate")
