"""Realistic synthetic Twilio call events, for examples, tests and benchmarks.

Each call yields its four call-progress CloudEvents (initiated, ringing, answered, completed) with the status-callback
parameters Twilio fills in, about 1.5 KB each. Everything is derived from a seed and the call number, so the same
arguments always produce the same events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

__all__ = ["call_events", "iter_call_events", "sink_test_event"]

_TYPE = "com.twilio.voice.status-callback.call."
_SCHEMA = "https://events-schemas.twilio.com/Voice.WebhookEvent/2"
_TWIML = (
    "PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0iVVRGLTgiPz48UmVzcG9uc2U+PFNheT5UaGFua3MgZm9yIGNhbGxpbmcuPC9TYXk+"
    "PFBhdXNlIGxlbmd0aD0iMSIvPjxSZWRpcmVjdCBtZXRob2Q9IlBPU1QiPmh0dHBzOi8vbXljb21wYW55LmNvbS9hbi1lbmRwb2ludDwv"
    "UmVkaXJlY3Q+PC9SZXNwb25zZT4="
)
_FINAL = ("completed", "completed", "completed", "busy", "no-answer", "completed", "canceled", "failed")


def _sid(prefix: str, *parts: object) -> str:
    return prefix + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


def _phone(seed: int, n: int) -> str:
    return "+1415" + str(int(hashlib.sha256(f"{seed}:{n}".encode()).hexdigest()[:10], 16) % 10_000_000).zfill(7)


def call_events(
    call: int, *, seed: int = 0, account: str = "AC" + "0" * 32, start: datetime | None = None
) -> list[dict[str, Any]]:
    """The call-progress events of call number ``call``: initiated, ringing, answered (unless busy) and completed.

    Every eighth call pattern ends busy, no-answer, canceled or failed, so ``completed`` carries varied final
    statuses; busy and no-answer calls are never answered.
    """
    base = (start or datetime(2026, 1, 1, tzinfo=UTC)) + timedelta(seconds=call * 7)
    call_sid = _sid("CA", seed, call)
    inbound = call % 3 != 0
    caller, callee = _phone(seed, call), "+14155550100"
    if not inbound:
        caller, callee = callee, caller
    final = _FINAL[call % len(_FINAL)]
    stages = ["initiated", "ringing"] + (["answered"] if final == "completed" else []) + ["completed"]
    events = []
    for sequence, stage in enumerate(stages):
        moment = base + timedelta(seconds=sequence * 3 + (40 if stage == "completed" else 0))
        status = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}.get(stage, final)
        event_sid = _sid("VW", seed, call, stage)
        params: dict[str, Any] = {
            "CallSid": call_sid,
            "AccountSid": account,
            "From": caller,
            "To": callee,
            "Caller": caller,
            "Called": callee,
            "CallStatus": status,
            "ApiVersion": "2010-04-01",
            "Direction": "inbound" if inbound else "outbound-api",
            "Timestamp": format_datetime(moment, usegmt=True),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
            "FromCity": "SAN FRANCISCO",
            "FromState": "CA",
            "FromZip": "94105",
            "FromCountry": "US",
            "ToCity": "",
            "ToState": "CA",
            "ToZip": "",
            "ToCountry": "US",
            "CallerCountry": "US",
            "CalledCountry": "US",
        }
        if stage == "completed":
            duration = "42" if final == "completed" else "0"
            params.update(CallDuration=duration, Duration="1" if final == "completed" else "0")
            if final == "busy":
                params["SipResponseCode"] = "486"
            elif final in ("no-answer", "canceled"):
                params["SipResponseCode"] = "487"
        if stage == "answered" and call % 5 == 0:
            params["AnsweredBy"] = "human"
        iso = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
        events.append(
            {
                "specversion": "1.0",
                "type": _TYPE + stage,
                "source": f"/2010-04-01/Accounts/{account}/Calls/{call_sid}.json",
                "id": event_sid,
                "dataschema": _SCHEMA,
                "datacontenttype": "application/json",
                "time": iso,
                "data": {
                    "sid": call_sid,
                    "requestDateCreated": format_datetime(moment, usegmt=True),
                    "timestamp": iso,
                    "eventSid": event_sid,
                    "request": {
                        "method": "POST",
                        "url": "https://mycompany.com/voice/status",
                        "parameters": params,
                    },
                    "response": {
                        "responseCode": 200,
                        "requestDuration": 140,
                        "contentType": "application/xml;charset=UTF-8",
                        "responseBody": _TWIML,
                        "dateCreated": format_datetime(moment, usegmt=True),
                    },
                },
            }
        )
    return events


def iter_call_events(count: int, *, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Yield ``count`` events, call after call."""
    produced, call = 0, 0
    while produced < count:
        for event in call_events(call, seed=seed):
            if produced == count:
                return
            yield event
            produced += 1
        call += 1


def sink_test_event(account: str = "AC" + "0" * 32) -> dict[str, Any]:
    """The Event Streams sink test event, with ``data`` as a JSON-encoded string as Twilio sends it."""
    return {
        "specversion": "1.0",
        "type": "com.twilio.eventstreams.test-event",
        "source": "Sink",
        "id": account,
        "dataschema": "https://events-schemas.twilio.com/EventStreams.TestSink/1.json",
        "datacontenttype": "application/json",
        "time": "2026-01-01T00:00:00.000Z",
        "data": '{"test_id":"f6a5d5a0-0000-4000-8000-000000000001"}',
    }
