"""Candidate single-decoder designs for the one-decode-path redesign (issue 11), measured end to end.

    python benchmarks/decode.py [--events 50000] [--repeats 3] [--instruction-events 2000]

Each candidate turns one JSON line into translations, over the same events (benchmarks/translate.py's generator):

* fast:     today's ``translate_record`` (typed msgspec decoder, the general path behind it for what it refuses)
* general:  today's general path alone (``loads_exact`` + ``CallProgressEvent`` + the dict ``apply``)
* msgspec:  a prototype with one set of msgspec Structs as the only definition: envelope, ``data.sid``, the
            parameters the mapping reads (both spellings), ``data`` as a JSON string, arrays, dead-letter records;
            msgspec's errors mapped to today's refusal reasons and messages
* pydantic: a prototype with one set of pydantic models validated by ``TypeAdapter.validate_json`` in one pass
            (a per-mapping parameters model, as the msgspec decoder has)

Both prototypes hand the validated object to today's ``_map`` (the compiled mapping, timestamps, Segment's rules),
so only the decode differs. The script reports events/s (best of N, alternating), instructions per event under
callgrind (where valgrind is installed), peak RSS of a subprocess streaming the file at two sizes, and a table of
JSON edge cases: which candidates agree with today's answer (outcome, reason, message) on each.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import orjson
from pydantic import AliasChoices, ConfigDict, Field, Json, TypeAdapter, ValidationError, create_model

from segment_bridge import load_mapping, translate_record
from segment_bridge.catalog import EventSupport, classify
from segment_bridge.deadletter import record_line
from segment_bridge.mapping import CompiledMapping
from segment_bridge.outcomes import Outcome, Refusal, RefusalReason, Translation
from segment_bridge.samples import iter_call_events
from segment_bridge.translate import _REFUSAL_REASONS, _map, _refuse

sys.path.insert(0, str(Path(__file__).parent))
from _measure import instructions_per_event, peak_rss_kb

Candidate = Callable[[bytes], list[Translation]]


# ---------------------------------------------------------------------------------------------------------------
# (a), (b): today's paths.


def today_fast(mapping: CompiledMapping) -> Candidate:
    return lambda raw: translate_record(raw, mapping)


def today_general(mapping: CompiledMapping) -> Candidate:
    general = dataclasses.replace(mapping, decoder=None)  # translate_record then goes straight to the general path
    return lambda raw: translate_record(raw, general)


# ---------------------------------------------------------------------------------------------------------------
# (c) msgspec only: one set of Structs, built per mapping (a field per parameter it reads, both spellings).

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _Head(msgspec.Struct, gc=False):
    """What a refusal needs when the event is not valid: its id and type, whatever their JSON types."""

    id: Any = None
    type: Any = None


class _DeadLetter(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    reason: Any
    id: Any
    type: Any
    message: Any
    hint: Any
    event: msgspec.Raw


class _KeptAsText(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    reason: Any
    id: Any
    type: Any
    message: Any
    hint: Any
    event: str
    event_encoding: Literal["json-text", "base64"]


# msgspec's messages -> pydantic's (today's refusal messages), and the JSON paths of the two.
_MSGSPEC_FIELD = re.compile(r"^Object missing required field `(?P<field>[^`]+)`(?: - at `\$\.?(?P<path>[^`]*)`)?$")
_MSGSPEC_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$")
_MSGSPEC_WORDS = (
    ("Expected `str` of length >= 1", "String should have at least 1 character"),
    ("Invalid enum value", "Input should be '1.0'"),
    ("Expected `object`", "Input should be a valid JSON object"),
    ("Expected `str | null`", "Input should be a valid string"),
    ("Expected `str`", "Input should be a valid string"),
    ("Number out of range", "a number beyond double range"),
)


def _msgspec_problem(error: msgspec.ValidationError) -> str:
    text = str(error)
    missing = _MSGSPEC_FIELD.match(text)
    if missing:
        path = ".".join(part for part in (missing["path"], missing["field"]) if part)
        return f"{path}: Field required"
    found = _MSGSPEC_AT.match(text)
    assert found is not None
    words, path = found["text"], (found["path"] or "").replace("[", ".").replace("]", "")
    for marker, replacement in _MSGSPEC_WORDS:
        if words.startswith(marker):
            if marker == "Number out of range":
                return f"a mapped value cannot be sent: {replacement}"
            return f"{path}: {replacement}"
    return f"{path}: {words}"


_JSON_BYTE = re.compile(r"\(byte (\d+)\)")


def _msgspec_json_problem(error: msgspec.DecodeError) -> str:
    text = str(error).removeprefix("JSON is malformed: ")
    position = _JSON_BYTE.search(text)
    text = _JSON_BYTE.sub("", text).strip()
    return f"not JSON: {text} at position {position.group(1) if position else 0}"


def msgspec_only(mapping: CompiledMapping) -> Candidate:
    decoder = mapping.decoder
    assert decoder is not None
    attributes = decoder.attributes
    parameters = msgspec.defstruct(
        "Parameters", [(a, Any, None) for a in attributes.values()], rename={a: k for k, a in attributes.items()},
        frozen=True, gc=False,
    )  # fmt: skip
    request = msgspec.defstruct(
        "Request", [("parameters", parameters, msgspec.field(default_factory=parameters))], frozen=True, gc=False
    )
    data_struct = msgspec.defstruct(
        "Data",
        [
            ("sid", _NonEmpty),
            ("timestamp", str | None, None),
            ("eventSid", str | msgspec.UnsetType | None, msgspec.UNSET),
            ("event_sid", str | msgspec.UnsetType | None, msgspec.UNSET),
            ("request", request | None, None),
        ],
        frozen=True,
        gc=False,
    )
    event_struct = msgspec.defstruct(
        "CloudEvent",
        [
            ("specversion", Literal["1.0"]),
            ("id", _NonEmpty),
            ("source", _NonEmpty),
            ("type", _NonEmpty),
            ("data", data_struct | str),
            ("time", str | None, None),
            ("dataschema", str | None, None),
        ],
        frozen=True,
        gc=False,
    )
    decode_event = msgspec.json.Decoder(event_struct).decode
    decode_data = msgspec.json.Decoder(data_struct).decode
    decode_head = msgspec.json.Decoder(_Head).decode
    decode_array = msgspec.json.Decoder(list[msgspec.Raw]).decode
    decode_dead_letter = msgspec.json.Decoder(_DeadLetter).decode
    decode_kept_as_text = msgspec.json.Decoder(_KeptAsText).decode
    decode_any = msgspec.json.Decoder().decode
    empty = parameters()
    time_parameter = decoder.time_parameter
    apply = mapping.apply_decoded

    def refuse_invalid(raw: bytes, error: msgspec.ValidationError) -> Translation:
        """Not a valid call event: a dead-letter record, an unsupported type, or an invalid event."""
        try:
            return one(bytes(decode_dead_letter(raw).event))
        except msgspec.MsgspecError:
            pass
        try:
            kept = decode_kept_as_text(raw)
        except msgspec.MsgspecError:
            pass
        else:  # the record of an input that was not JSON: read its text again (first translation, as a prototype)
            text = kept.event.encode() if kept.event_encoding == "json-text" else base64.b64decode(kept.event)
            return translate(text)[0]
        try:
            head = decode_head(raw)
        except msgspec.ValidationError:  # not an object
            kind = type(decode_any(raw)).__name__
            return _refuse(raw, RefusalReason.INVALID_EVENT, f"expected a CloudEvent object, got {kind}")
        event_id = head.id if isinstance(head.id, str) and head.id else None
        event_type = head.type if isinstance(head.type, str) and head.type else None
        if event_type is None:
            message = "type: a CloudEvent needs a non-empty string 'type'"
            return _refuse(raw, RefusalReason.INVALID_EVENT, message, event_id=event_id)
        entry = classify(event_type)
        if entry.support is EventSupport.TEST_EVENT:
            return Translation(Outcome.ACKNOWLEDGED, raw, event_id, event_type, note=entry.message)
        if entry.support is not EventSupport.SUPPORTED:
            reason = _REFUSAL_REASONS[entry.support]
            return _refuse(raw, reason, entry.message, entry.hint, event_id, event_type)
        return _refuse(raw, RefusalReason.INVALID_EVENT, _msgspec_problem(error), "", event_id, event_type)

    def one(raw: bytes) -> Translation:
        try:
            event = decode_event(raw)
        except msgspec.ValidationError as error:
            return refuse_invalid(raw, error)
        entry = classify(event.type)
        if entry.support is not EventSupport.SUPPORTED:
            if entry.support is EventSupport.TEST_EVENT:
                return Translation(Outcome.ACKNOWLEDGED, raw, event.id, event.type, note=entry.message)
            reason = _REFUSAL_REASONS[entry.support]
            return _refuse(raw, reason, entry.message, entry.hint, event.id, event.type)
        data = event.data
        if isinstance(data, str):  # data sent as a JSON string: the same Struct, a second decode of that string
            try:
                data = decode_data(data)
            except msgspec.DecodeError:
                return _refuse(raw, RefusalReason.INVALID_EVENT, "data: a string that is not JSON", "", event.id,
                               event.type)  # fmt: skip
            except msgspec.ValidationError as error:
                problem = _msgspec_problem(error).replace(": ", ": ", 1)
                return _refuse(raw, RefusalReason.INVALID_EVENT, f"data.{problem}", "", event.id, event.type)
            event = msgspec.structs.replace(event, data=data)
        req = data.request
        params = req.parameters if req is not None else empty
        return _map(event, apply, event, data, params, time_parameter, mapping, None, raw)

    def translate(raw: bytes) -> list[Translation]:
        # The one extra pass: msgspec checks UTF-8 only in the strings it decodes, not in those it skips.
        if not raw.isascii():
            try:
                raw.decode()
            except UnicodeDecodeError as error:
                problem = f"not JSON: bytes that are not valid UTF-8 at position {error.start}"
                return [_refuse(raw, RefusalReason.INVALID_JSON, problem)]
        try:
            if raw.lstrip()[:1] == b"[":
                elements = decode_array(raw)
                if not elements:
                    return [_refuse([], RefusalReason.INVALID_EVENT, "an empty JSON array holds no CloudEvent")]
                return [one(bytes(element)) for element in elements]
            return [one(raw)]
        except msgspec.DecodeError as error:
            return [_refuse(raw, RefusalReason.INVALID_JSON, _msgspec_json_problem(error))]

    return translate


# ---------------------------------------------------------------------------------------------------------------
# (d) pydantic only: one set of models, TypeAdapter.validate_json in one pass.


def pydantic_only(mapping: CompiledMapping) -> Candidate:
    decoder = mapping.decoder
    assert decoder is not None
    attributes = decoder.attributes
    frozen = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    parameters = create_model(  # type: ignore[call-overload]
        "Parameters", __config__=frozen, **{a: (Any, Field(None, alias=k)) for k, a in attributes.items()}
    )

    request = create_model("Request", __config__=frozen, parameters=(parameters, Field(default_factory=parameters)))
    data = create_model(
        "Data",
        __config__=frozen,
        sid=(str, Field(min_length=1)),
        timestamp=(str | None, None),
        # one spelling read, as the models do today (apply_decoded reads eventSid first, then event_sid)
        eventSid=(Any, Field(msgspec.UNSET, validation_alias=AliasChoices("eventSid", "event_sid"))),
        event_sid=(Any, Field(msgspec.UNSET, validation_alias="__never__")),
        request=(request | None, None),
    )
    event_model = create_model(
        "Event",
        __config__=ConfigDict(frozen=True, extra="ignore"),
        specversion=(Literal["1.0"], ...),
        id=(str, Field(min_length=1)),
        source=(str, Field(min_length=1)),
        type=(str, Field(min_length=1)),
        time=(str | None, None),
        dataschema=(str | None, None),
        data=(data | Json[data], ...),  # Json: data sent as a JSON string, in the same pass
    )

    validate = TypeAdapter(event_model).validate_json
    validate_array = TypeAdapter(list[event_model]).validate_json  # type: ignore[valid-type]
    empty = parameters()
    time_parameter = decoder.time_parameter
    apply = mapping.apply_decoded

    def translate(raw: bytes) -> list[Translation]:
        # The prototype measures the valid case; its refusals are judged in the edge-case table only.
        try:
            if raw.lstrip()[:1] == b"[":  # the valid case only: an invalid element would refuse the whole array
                return [one(event) for event in validate_array(raw)]
            return [one(validate(raw))]
        except ValidationError as error:
            first = error.errors(include_url=False, include_input=False)[0]
            if first["type"] == "json_invalid":
                return [_refuse(raw, RefusalReason.INVALID_JSON, f"not JSON: {first['ctx']['error']}")]
            path = ".".join(str(part) for part in first["loc"])
            return [_refuse(raw, RefusalReason.INVALID_EVENT, f"{path}: {first['msg']}")]

    def one(event: Any) -> Translation:
        entry = classify(event.type)
        if entry.support is not EventSupport.SUPPORTED:
            reason = _REFUSAL_REASONS.get(entry.support, RefusalReason.UNKNOWN_EVENT_TYPE)
            return _refuse(None, reason, entry.message, entry.hint, event.id, event.type)
        data = event.data
        req = data.request
        params = req.parameters if req is not None else empty
        # raw=None: pydantic reads 1e400 as infinity, which only _map's raw-less branch refuses
        return _map(event, apply, event, data, params, time_parameter, mapping, None, None)

    return translate


CANDIDATES: dict[str, Callable[[CompiledMapping], Candidate]] = {
    "fast": today_fast,
    "general": today_general,
    "msgspec": msgspec_only,
    "pydantic": pydantic_only,
}


# ---------------------------------------------------------------------------------------------------------------
# JSON edge cases: each candidate's answer against today's (fast, which falls back to general).


def _edge_cases() -> dict[str, bytes]:
    event = next(iter_call_events(1))
    base = orjson.dumps(event)

    def with_param(key: str, literal: bytes) -> bytes:
        return base.replace(b'"parameters":{', b'"parameters":{"' + key.encode() + b'":' + literal + b",", 1)

    def with_response(literal: bytes) -> bytes:
        return base.replace(b'"response":{', b'"response":{"extra":' + literal + b",", 1)

    big = b"123456789012345678901234567890"
    return {
        "valid event": base,
        "invalid UTF-8 in a skipped field": with_response(b'"\xff"'),
        "invalid UTF-8 in a read field": with_param("AnsweredBy", b'"\xff"'),
        "1e400 in a skipped field": with_response(b"1e400"),
        "1e400 in a mapped field": with_param("AnsweredBy", b"1e400"),
        ">64-bit integer in a skipped field": with_response(big),
        ">64-bit integer in a mapped field": with_param("AnsweredBy", big),
        "1e400 in a read, unused field (Timestamp)": base.replace(
            b'"Timestamp":"Thu, 01 Jan 2026 00:00:00 GMT"', b'"Timestamp":1e400', 1
        ),
        "NaN literal in a skipped field": with_response(b"NaN"),
        "lone surrogate escape, skipped field": with_response(b'"\\ud800"'),
        "specversion 0.3": base.replace(b'"specversion":"1.0"', b'"specversion":"0.3"'),
        "empty id": base.replace(b'"id":"VW', b'"id":"","x":"VW', 1),
        "data.sid missing": base.replace(b'"sid":"CA', b'"x":"CA', 1),
        "data.sid an integer": base.replace(b'"sid":"CAac72368a586a18c19088393573ce0307"', b'"sid":7', 1),
        "data as a JSON string": orjson.dumps({**event, "data": orjson.dumps(event["data"]).decode()}),
        "array of two events": b"[" + base + b"," + base + b"]",
        "dead-letter record of a valid event": record_line(
            Refusal(RefusalReason.DELIVERY_FAILED, "Segment answered 500"), event
        ),
        "dead-letter record of invalid UTF-8": record_line(
            Refusal(RefusalReason.INVALID_JSON, "not JSON"), with_response(b'"\xff"')
        ),
        "unknown event type": base.replace(b"status-callback.call.initiated", b"status-callback.call.exploded"),
        "not JSON": base[:-5],
    }


def _answer(translations: list[Translation]) -> tuple[Any, ...]:
    return tuple(
        (t.outcome.value, t.refusal.reason.value if t.refusal else "", t.refusal.message if t.refusal else "")
        for t in translations
    )


def edge_table(mapping: CompiledMapping) -> None:
    candidates = {name: make(mapping) for name, make in CANDIDATES.items()}
    print("\nedge cases: today's answer; per candidate = same outcome/reason/message, ~ same reason only, x differs")
    for case, raw in _edge_cases().items():
        want = _answer(candidates["fast"](raw))
        marks = []
        for name, fn in candidates.items():
            try:
                got = _answer(fn(raw))
            except Exception as error:
                got = (("crash", type(error).__name__, ""),)
            same_reason = [g[:2] for g in got] == [w[:2] for w in want]
            marks.append(f"{name}:{'=' if got == want else '~' if same_reason else 'x'}")
            if got != want:
                marks[-1] += f"({got[0][1] or got[0][0]}: {got[0][2][:60]})"
        first = want[0]
        print(f"  {case:40} today {first[1] or first[0]:15} | " + " | ".join(marks))


# ---------------------------------------------------------------------------------------------------------------
# Measurement.


def write_events(path: Path, count: int) -> None:
    with path.open("wb") as out:
        for event in iter_call_events(count):
            out.write(orjson.dumps(event) + b"\n")


def run(fn: Candidate, lines: list[bytes]) -> int:
    produced = 0
    for line in lines:
        for translation in fn(line):
            produced += translation.track is not None
    return produced


def run_only(name: str, path: Path, stream: bool) -> None:
    mapping = load_mapping()
    if name == "none":
        for make in CANDIDATES.values():
            make(mapping)  # every mode pays the set-up of all; "none" measures just that
        return
    fn = CANDIDATES[name](mapping)
    if stream:  # one line at a time, as `segment-bridge translate` reads: peak RSS must not follow the input
        produced = 0
        with path.open("rb") as lines:
            for line in lines:
                for translation in fn(line.rstrip(b"\n")):
                    produced += translation.track is not None
        sys.stderr.write(f"RSS={peak_rss_kb()} produced={produced}\n")
        return
    for make in CANDIDATES.values():
        make(mapping)
    run(fn, path.read_bytes().splitlines())


def peak_rss_mb(name: str, path: Path) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--only", name, "--input", str(path), "--stream"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("RSS="))
    return int(line.split()[0][4:]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--instruction-events", type=int, default=2_000, help="events per callgrind run (0: skip)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        run_only(args.only, Path(args.input), args.stream)
        return
    mapping = load_mapping()
    edge_table(mapping)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        write_events(path, args.events)
        lines = path.read_bytes().splitlines()
        candidates = {name: make(mapping) for name, make in CANDIDATES.items()}
        best = dict.fromkeys(candidates, float("inf"))
        for _ in range(args.repeats):
            for name, fn in candidates.items():
                start = time.perf_counter()
                produced = run(fn, lines)
                best[name] = min(best[name], time.perf_counter() - start)
                assert produced == args.events, (name, produced)
        del lines
        small = Path(tmp) / "small.jsonl"
        write_events(small, max(args.events // 10, 1))
        print(f"\n{args.events} events; best of {args.repeats}; peak RSS streaming {args.events // 10} / {args.events}")
        for name, seconds in best.items():
            rss_small, rss_large = peak_rss_mb(name, small), peak_rss_mb(name, path)
            print(
                f"{name:>9}: {args.events / seconds:>9,.0f} events/s ({seconds * 1e6 / args.events:5.1f} µs/event)"
                f"  RSS {rss_small:.1f} / {rss_large:.1f} MB"
            )
        if args.instruction_events:
            sample = Path(tmp) / "sample.jsonl"
            write_events(sample, args.instruction_events)
            per_event = instructions_per_event(__file__, CANDIDATES, sample, args.instruction_events)
            if per_event is None:
                print("instructions: valgrind not available, skipped")
            else:
                for name, value in per_event.items():
                    print(f"{name:>9}: {value / 1000:>7.1f} K instructions/event (callgrind)")


if __name__ == "__main__":
    main()
