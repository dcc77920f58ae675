"""Pins the segment-analytics-python 2.4 behaviour that segment_bridge.delivery relies on.

If an upgrade changes any of this, segment_bridge/delivery/transports.py needs a look before the pin in
pyproject.toml moves.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from responses.registries import OrderedRegistry
from segment.analytics import consumer, request
from segment.analytics.version import VERSION

URL = "https://api.segment.io/v1/batch"
KEY = "contract-key"


class FakeResponse:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = requests.structures.CaseInsensitiveDict(headers)


def test_version_is_the_pinned_series():
    assert VERSION.startswith("2.4.")


def test_post_signature_takes_the_body_as_keywords():
    params = inspect.signature(request.post).parameters
    assert list(params) == [
        "write_key",
        "host",
        "gzip",
        "timeout",
        "proxies",
        "oauth_manager",
        "retry_count",
        "kwargs",
    ]
    assert params["kwargs"].kind is inspect.Parameter.VAR_KEYWORD


@responses.activate(registry=OrderedRegistry)
def test_post_sends_batch_with_basic_auth_write_key_and_a_fresh_sent_at():
    responses.post("https://eu.example/v1/batch", status=200, json={"success": True})
    responses.post("https://eu.example/v1/batch", status=200, json={"success": True})
    batch = [{"type": "track", "event": "E", "anonymousId": "a", "messageId": "m1"}]

    first = request.post(KEY, host="https://eu.example/", timeout=3, batch=batch)
    request.post(KEY, host="https://eu.example", timeout=3, batch=batch)

    assert isinstance(first, requests.Response)
    bodies = [json.loads(c.request.body) for c in responses.calls]
    assert bodies[0]["batch"] == batch
    assert bodies[0]["writeKey"] == KEY
    assert bodies[0]["sentAt"] != bodies[1]["sentAt"]  # stamped at each call, so at each retry
    headers = responses.calls[0].request.headers
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert headers["Content-Type"] == "application/json"
    assert "X-Retry-Count" not in headers
    assert batch == [{"type": "track", "event": "E", "anonymousId": "a", "messageId": "m1"}]  # not mutated


@responses.activate
def test_post_gzip_sets_content_encoding():
    responses.post(URL, status=200, json={"success": True})
    request.post(KEY, gzip=True, batch=[])
    assert responses.calls[0].request.headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (503, {"code": "unavailable", "message": "later"}, "unavailable"),
        (400, "not json", "unknown"),
        (429, ["a", "list"], "unknown"),
    ],
)
@responses.activate
def test_non_2xx_raises_api_error_with_status_and_response(status, body, code):
    if isinstance(body, str):
        responses.post(URL, status=status, body=body, headers={"Retry-After": "3"})
    else:
        responses.post(URL, status=status, json=body, headers={"Retry-After": "3"})
    with pytest.raises(request.APIError) as info:
        request.post(KEY, batch=[])
    assert info.value.status == status
    assert info.value.code == code
    assert isinstance(info.value.response, requests.Response)
    assert request.parse_retry_after(info.value.response) == 3


@responses.activate
def test_redirect_without_location_is_an_api_error():
    responses.post(URL, status=304)
    with pytest.raises(request.APIError) as info:
        request.post(KEY, batch=[])
    assert (info.value.status, info.value.code) == (304, "redirect")


@pytest.mark.parametrize("error", [requests.ConnectionError("down"), requests.ReadTimeout("slow")])
@responses.activate
def test_network_errors_propagate_as_requests_exceptions(error):
    responses.post(URL, body=error)
    with pytest.raises(type(error)):
        request.post(KEY, batch=[])


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7), ("0", 0), ("-5", 0), ("100000", 300), (None, None), ("", None), ("soon", None)],
)
def test_parse_retry_after_seconds(header, expected):
    headers = {} if header is None else {"Retry-After": header}
    assert request.parse_retry_after(FakeResponse(headers)) == expected


def test_parse_retry_after_http_date():
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 110 <= request.parse_retry_after(FakeResponse({"Retry-After": future})) <= 120
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=120), usegmt=True)
    assert request.parse_retry_after(FakeResponse({"Retry-After": past})) is None


def test_size_limits():
    assert consumer.MAX_MSG_SIZE == 32768
    assert consumer.BATCH_SIZE_LIMIT == 475_000


@responses.activate
def test_post_logs_the_write_key_at_debug_which_is_why_delivery_filters_it(caplog):
    responses.post(URL, status=200, json={"success": True})
    logger = logging.getLogger("segment")
    saved = logger.filters[:]
    for f in saved:
        logger.removeFilter(f)
    try:
        with caplog.at_level(logging.DEBUG, logger="segment"):
            request.post(KEY, batch=[])
    finally:
        for f in saved:
            logger.addFilter(f)
    assert KEY in caplog.text
