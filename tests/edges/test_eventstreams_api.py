"""eventstreams.api against the stand-in: Twilio's answers become one-line TwilioApiErrors with their status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("twilio")
pytest.importorskip("starlette")

from eventstreams_standin import AUTH_TOKEN, CURRENT, DEPRECATED, EventStreamsStandIn

from segment_bridge.eventstreams.api import connect
from segment_bridge.eventstreams.errors import TwilioApiError


@pytest.fixture
def es() -> Iterator[EventStreamsStandIn]:
    with EventStreamsStandIn() as standin:
        yield standin


def test_an_unknown_sid_is_a_404_naming_the_request(es):
    api = connect(es.env(), sleep=lambda _: None)
    with pytest.raises(TwilioApiError) as caught:
        api.sink("DG" + "f" * 32)
    assert caught.value.status == 404
    assert str(caught.value).startswith("GET /v1/Sinks/DGfff")
    assert "no such resource in this account" in str(caught.value)


def test_adding_a_type_twice_is_409_and_a_restricted_type_400(es):
    sid = es.make_subscription(es.make_sink("https://b.example.com/e"), {CURRENT[0]: 2})
    api = connect(es.env(), sleep=lambda _: None)
    with pytest.raises(TwilioApiError) as twice:
        api.add_subscribed_type(sid, CURRENT[0], 2)
    assert twice.value.status == 409 and "already subscribed" in str(twice.value)
    es.add_type(DEPRECATED[1], "restricted")
    with pytest.raises(TwilioApiError) as restricted:
        api.add_subscribed_type(sid, DEPRECATED[1], 2)
    assert restricted.value.status == 400 and "restricted" in str(restricted.value)
    assert es.types_of(sid) == {CURRENT[0]: 2}


def test_lists_follow_next_page_url_through_the_stand_in(es):
    for number in range(7):
        es.make_sink(f"https://s{number}.example.com/e")
    es.page_size_max = 3
    api = connect(es.env(), sleep=lambda _: None)
    assert len(api.sinks()) == 7
    pages = [path for method, path, _ in es.requests if path == "/v1/Sinks"]
    assert len(pages) == 3


def test_the_api_object_never_shows_the_token(es):
    api = connect(es.env(), sleep=lambda _: None)
    assert AUTH_TOKEN not in repr(api) and AUTH_TOKEN not in str(api)
