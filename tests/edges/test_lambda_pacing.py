"""The Lambda's SEGMENT_BRIDGE_MAX_RATE: unlimited by default, one pacer per execution environment."""

from __future__ import annotations

import pytest

from segment_bridge.aws_lambda import load_runtime
from segment_bridge.exceptions import ConfigurationError

pytestmark = pytest.mark.usefixtures("fresh_lambda_runtime")

ENV = {"SEGMENT_WRITE_KEY": "wk_lambda-pacing-key", "SEGMENT_BRIDGE_LOG_LEVEL": "ERROR"}


def test_the_lambda_is_unlimited_by_default_and_paces_when_told() -> None:
    runtime = load_runtime(ENV)
    assert runtime.pacer is not None
    assert runtime.pacer.max_rate == 0  # the shared pause after a 429 still applies
    assert load_runtime({**ENV, "SEGMENT_BRIDGE_MAX_RATE": "50"}).pacer.max_rate == 50  # type: ignore[union-attr]


def test_a_bad_rate_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"^SEGMENT_BRIDGE_MAX_RATE must be a number of events per second"):
        load_runtime({**ENV, "SEGMENT_BRIDGE_MAX_RATE": "-1"})
