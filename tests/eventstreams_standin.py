"""A stand-in of Twilio's Event Streams API (``events.twilio.com/v1``) on 127.0.0.1, for tests.

Starlette under uvicorn in a thread, behaving as Twilio documents (the Event Streams API reference and
twilio-oai's ``twilio_events_v1.json``): Basic auth with the account's Auth Token or an API key (401 otherwise),
list pages under ``meta`` with ``key`` and a ``next_page_url`` the client follows, 404 for unknown SIDs, 409 for
adding a subscribed type twice, 400 for a restricted or unknown type or a subscription on a sink that is not
active, one subscription per sink, ``Test`` posting a signed ``com.twilio.eventstreams.test-event`` to the sink's
destination and ``Validate`` activating the sink with its test id.

Test controls: :meth:`EventStreamsStandIn.throttle` (the next requests get 429 with ``Retry-After``),
:meth:`~EventStreamsStandIn.fail_type_changes` (a type change fails with 500 before or after it is made),
:attr:`~EventStreamsStandIn.page_size_max` (forces pagination), and :attr:`~EventStreamsStandIn.history`, one
entry per change to a subscription's types with the types it carried afterwards.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

__all__ = ["CURRENT", "DEPRECATED", "Change", "EventStreamsStandIn", "new_sid"]

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "standin-auth-token-" + "7" * 13
API_KEY = "SK" + "0" * 31 + "2"
API_SECRET = "standin-api-secret-" + "9" * 13

STAGES = ("initiated", "ringing", "answered", "completed")
CURRENT = tuple(f"com.twilio.voice.status-callback.call.{stage}" for stage in STAGES)
DEPRECATED = tuple(f"com.twilio.voice.webhook.status-callback.call.{stage}" for stage in STAGES)
API_REQUEST = ("com.twilio.voice.api-request.call.created", "com.twilio.voice.api-request.call.modified")
MESSAGING = "com.twilio.messaging.message.delivered"

_counter = itertools.count(1)


def new_sid(prefix: str) -> str:
    return f"{prefix}{next(_counter):032x}"


@dataclass
class Change:
    """One change to a subscription's types: ``add``, ``update``, ``remove`` or ``create``, and the types after it."""

    op: str
    subscription_sid: str
    event_type: str
    types_after: frozenset[str]


@dataclass
class _Subscription:
    sid: str
    description: str
    sink_sid: str
    types: dict[str, int] = field(default_factory=dict)


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


class EventStreamsStandIn:
    """The stand-in; use as a context manager (the server and any test-event senders are always stopped)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.types: dict[str, dict[str, str]] = {}
        for name in CURRENT:
            self.add_type(name, "available")
        for name in DEPRECATED:
            self.add_type(name, "deprecated")
        for name in API_REQUEST:
            self.add_type(name, "available")
        self.add_type(MESSAGING, "available", schema_id="Messaging.MessageStatus")
        self.schemas: dict[str, list[int]] = {"Voice.WebhookEvent": [1, 2], "Messaging.MessageStatus": [1, 2, 3, 4]}
        self.sinks: dict[str, dict[str, Any]] = {}
        self.test_ids: dict[str, str] = {}
        self.subscriptions: dict[str, _Subscription] = {}
        self.history: list[Change] = []
        self.requests: list[tuple[str, str, int]] = []
        self.test_deliveries: list[int | str] = []
        self.page_size_max = 1000
        #: Public origin -> where it is served (a TLS terminator in front of the bridge): Twilio signs the public
        #: URL, and the request reaches the address behind it.
        self.forward: dict[str, str] = {}
        self._throttle: list[str] = []
        self._fail_at: int | None = None
        self._fail_after_change = False
        self._fail_headers: dict[str, str] | None = None
        self._type_changes = 0
        self._senders: list[threading.Thread] = []
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # set-up helpers (direct, not through HTTP)

    def add_type(self, name: str, status: str, schema_id: str = "Voice.WebhookEvent") -> None:
        self.types[name] = {
            "type": name,
            "schema_id": schema_id,
            "status": status,
            "description": name,
            "documentation_url": "https://www.twilio.com/docs/events/event-types",
        }

    def make_sink(self, destination: str, status: str = "active", sink_type: str = "webhook") -> str:
        sid = new_sid("DG")
        with self.lock:
            self.sinks[sid] = {
                "sid": sid,
                "description": "made by the test",
                "sink_type": sink_type,
                "status": status,
                "sink_configuration": {"destination": destination, "method": "POST", "batch_events": False},
            }
        return sid

    def make_subscription(self, sink_sid: str, types: dict[str, int], description: str = "made by the test") -> str:
        sid = new_sid("DF")
        with self.lock:
            self.subscriptions[sid] = _Subscription(sid, description, sink_sid, dict(types))
        return sid

    def types_of(self, subscription_sid: str) -> dict[str, int]:
        with self.lock:
            return dict(self.subscriptions[subscription_sid].types)

    # controls

    def throttle(self, count: int, retry_after: str = "0") -> None:
        """Answer the next ``count`` requests with 429 and this ``Retry-After``."""
        with self.lock:
            self._throttle = [retry_after] * count

    def fail_type_changes(self, at: int | None, *, after_change: bool = False, retry_after: str | None = None) -> None:
        """From the ``at``-th type change on (1 = the next), answer 500; ``after_change`` makes the change first.

        ``retry_after`` adds that header to the 500 (Twilio then says to try again).
        """
        with self.lock:
            self._fail_at = None if at is None else self._type_changes + at
            self._fail_after_change = after_change
            self._fail_headers = {"Retry-After": retry_after} if retry_after is not None else None

    def wait_for_test_deliveries(self, count: int, timeout: float = 10.0) -> list[int | str]:
        """The outcomes of the test events sent, once ``count`` of them have been answered (or time ran out)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.test_deliveries) >= count, timeout=timeout)
            return list(self.test_deliveries)

    def wait_for_sink_status(self, sid: str, status: str, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.sinks[sid]["status"] == status, timeout=timeout)

    # server

    def __enter__(self) -> EventStreamsStandIn:
        routes = [
            Route("/v1/Types", self._types),
            Route("/v1/Types/{type}", self._type),
            Route("/v1/Schemas/{id}", self._schema),
            Route("/v1/Schemas/{id}/Versions", self._schema_versions),
            Route("/v1/Sinks", self._sinks, methods=["GET", "POST"]),
            Route("/v1/Sinks/{sid}", self._sink, methods=["GET", "DELETE"]),
            Route("/v1/Sinks/{sid}/Test", self._sink_test, methods=["POST"]),
            Route("/v1/Sinks/{sid}/Validate", self._sink_validate, methods=["POST"]),
            Route("/v1/Subscriptions", self._subscriptions, methods=["GET", "POST"]),
            Route("/v1/Subscriptions/{sid}", self._subscription, methods=["GET", "DELETE"]),
            Route("/v1/Subscriptions/{sid}/SubscribedEvents", self._subscribed_events, methods=["GET", "POST"]),
            Route(
                "/v1/Subscriptions/{sid}/SubscribedEvents/{type}",
                self._subscribed_event,
                methods=["GET", "POST", "DELETE"],
            ),
        ]
        app = Starlette(routes=routes)
        app.add_middleware(_Gate, standin=self)  # type: ignore[arg-type]
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        started = threading.Event()
        original = self.server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets)
            started.set()

        self.server.startup = startup  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        if not started.wait(10) or not self.server.started:
            raise RuntimeError("the Event Streams stand-in did not start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        for sender in list(self._senders):
            sender.join(10)
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment the commands need to talk to this stand-in with the account's Auth Token."""
        return {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SEGMENT_BRIDGE_TWILIO_API_URL": self.base_url,
            **extra,
        }

    # plumbing

    def _page(self, request: Request, key: str, items: list[dict[str, Any]]) -> JSONResponse:
        query = request.query_params
        size = max(1, min(int(query.get("PageSize", "50")), self.page_size_max))
        page = int(query.get("Page", "0"))
        chunk = items[page * size : (page + 1) * size]
        path = request.url.path
        extra = {name: value for name, value in query.items() if name not in ("PageSize", "Page", "PageToken")}

        def url(number: int) -> str:
            return f"{self.base_url}{path}?" + urlencode(
                {**extra, "PageSize": size, "Page": number, "PageToken": f"PT{number}"}
            )

        more = (page + 1) * size < len(items)
        meta = {
            "page": page,
            "page_size": size,
            "first_page_url": url(0),
            "previous_page_url": url(page - 1) if page > 0 else None,
            "url": url(page),
            "next_page_url": url(page + 1) if more else None,
            "key": key,
        }
        return JSONResponse({key: chunk, "meta": meta})

    def _type_json(self, name: str) -> dict[str, Any]:
        return {
            **self.types[name],
            "date_created": "2024-02-28T00:00:00Z",
            "date_updated": "2024-02-28T00:00:00Z",
            "url": f"{self.base_url}/v1/Types/{name}",
            "links": {},
        }

    def _sink_json(self, sink: dict[str, Any]) -> dict[str, Any]:
        return {
            **sink,
            "date_created": "2026-01-01T00:00:00Z",
            "date_updated": "2026-01-01T00:00:00Z",
            "url": f"{self.base_url}/v1/Sinks/{sink['sid']}",
            "links": {},
        }

    def _subscription_json(self, sub: _Subscription) -> dict[str, Any]:
        return {
            "account_sid": ACCOUNT_SID,
            "sid": sub.sid,
            "description": sub.description,
            "sink_sid": sub.sink_sid,
            "date_created": "2026-01-01T00:00:00Z",
            "date_updated": "2026-01-01T00:00:00Z",
            "url": f"{self.base_url}/v1/Subscriptions/{sub.sid}",
            "links": {},
        }

    def _subscribed_json(self, sub: _Subscription, name: str) -> dict[str, Any]:
        return {
            "account_sid": ACCOUNT_SID,
            "type": name,
            "schema_version": sub.types[name],
            "subscription_sid": sub.sid,
            "url": f"{self.base_url}/v1/Subscriptions/{sub.sid}/SubscribedEvents/{name}",
        }

    def _not_found(self, request: Request) -> JSONResponse:
        return _error(404, 20404, f"The requested resource {request.url.path} was not found")

    def _type_change(self) -> str | None:
        """Count a type change; ``"before"``/``"after"`` when it is to fail (before or after being made)."""
        self._type_changes += 1
        if self._fail_at is not None and self._type_changes >= self._fail_at:
            return "after" if self._fail_after_change else "before"
        return None

    def _record(self, op: str, sub: _Subscription, name: str) -> None:
        self.history.append(Change(op, sub.sid, name, frozenset(sub.types)))

    # endpoints

    async def _types(self, request: Request) -> Response:
        with self.lock:
            schema = request.query_params.get("SchemaId")
            items = [self._type_json(name) for name, t in self.types.items() if schema in (None, t["schema_id"])]
        return self._page(request, "types", items)

    async def _type(self, request: Request) -> Response:
        name = request.path_params["type"]
        with self.lock:
            if name not in self.types:
                return self._not_found(request)
            return JSONResponse(self._type_json(name))

    async def _schema(self, request: Request) -> Response:
        schema = request.path_params["id"]
        if schema not in self.schemas:
            return self._not_found(request)
        return JSONResponse(
            {
                "id": schema,
                "url": f"{self.base_url}/v1/Schemas/{schema}",
                "links": {},
                "latest_version": max(self.schemas[schema]),
                "latest_version_date_created": None,
            }
        )

    async def _schema_versions(self, request: Request) -> Response:
        schema = request.path_params["id"]
        if schema not in self.schemas:
            return self._not_found(request)
        items = [
            {
                "id": schema,
                "schema_version": n,
                "date_created": "2024-01-01T00:00:00Z",
                "url": f"{self.base_url}/v1/Schemas/{schema}/Versions/{n}",
                "raw": f"https://events-schemas.twilio.com/{schema}/{n}",
            }
            for n in self.schemas[schema]
        ]
        return self._page(request, "schema_versions", items)

    async def _sinks(self, request: Request) -> Response:
        if request.method == "GET":
            with self.lock:
                items = [self._sink_json(sink) for sink in self.sinks.values()]
            return self._page(request, "sinks", items)
        form = await _form(request)
        try:
            configuration = json.loads(str(form.get("SinkConfiguration", "")))
        except ValueError:
            return _error(400, 20001, "Invalid SinkConfiguration")
        if form.get("SinkType") not in ("webhook", "kinesis", "segment") or not form.get("Description"):
            return _error(400, 20001, "Missing required parameter")
        sid = new_sid("DG")
        with self.changed:
            self.sinks[sid] = {
                "sid": sid,
                "description": str(form["Description"]),
                "sink_type": str(form["SinkType"]),
                "status": "initialized",
                "sink_configuration": configuration,
            }
            self.changed.notify_all()
            return JSONResponse(self._sink_json(self.sinks[sid]), status_code=201)

    async def _sink(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        with self.changed:
            if sid not in self.sinks:
                return self._not_found(request)
            if request.method == "DELETE":
                del self.sinks[sid]
                return Response(status_code=204)
            return JSONResponse(self._sink_json(self.sinks[sid]))

    async def _sink_test(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        with self.changed:
            if sid not in self.sinks:
                return self._not_found(request)
            sink = self.sinks[sid]
            test_id = str(uuid.uuid4())
            self.test_ids[sid] = test_id
            if sink["status"] != "active":
                sink["status"] = "validating"
            destination = sink["sink_configuration"].get("destination", "")
            self.changed.notify_all()
        sender = threading.Thread(target=self._send_test_event, args=(destination, test_id), daemon=True)
        self._senders.append(sender)
        sender.start()
        return JSONResponse({"result": "submitted"})

    def _send_test_event(self, destination: str, test_id: str) -> None:
        """Post the test event as Twilio does: one CloudEvent, ``bodySHA256`` in the URL, ``X-Twilio-Signature``."""
        event = {
            "specversion": "1.0",
            "type": "com.twilio.eventstreams.test-event",
            "source": "Sink",
            "id": ACCOUNT_SID,
            "dataschema": "https://events-schemas.twilio.com/EventStreams.TestSink/1.json",
            "datacontenttype": "application/json",
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": json.dumps({"test_id": test_id}),
        }
        body = json.dumps(event)
        url = (
            destination
            + ("&" if "?" in destination else "?")
            + "bodySHA256="
            + hashlib.sha256(body.encode()).hexdigest()
        )
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
        target = url
        for public, actual in self.forward.items():
            if url.startswith(public + "/"):
                target = actual + url[len(public) :]
        if not target.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
            # Tests reach 127.0.0.1 only: an address nobody forwarded is a sink Twilio cannot reach.
            with self.changed:
                self.test_deliveries.append("unreachable")
                self.changed.notify_all()
            return
        try:
            answer = httpx.post(
                target,
                content=body,
                headers={"Content-Type": "application/json", "X-Twilio-Signature": signature},
                timeout=5.0,
            )
            outcome: int | str = answer.status_code
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        with self.changed:
            self.test_deliveries.append(outcome)
            self.changed.notify_all()

    async def _sink_validate(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        form = await _form(request)
        with self.changed:
            if sid not in self.sinks:
                return self._not_found(request)
            if not form.get("TestId") or self.test_ids.get(sid) != form.get("TestId"):
                return _error(400, 20001, "Invalid TestId")
            self.sinks[sid]["status"] = "active"
            self.changed.notify_all()
        return JSONResponse({"result": "valid"})

    async def _subscriptions(self, request: Request) -> Response:
        if request.method == "GET":
            with self.lock:
                sink = request.query_params.get("SinkSid")
                items = [self._subscription_json(s) for s in self.subscriptions.values() if sink in (None, s.sink_sid)]
            return self._page(request, "subscriptions", items)
        form = await _form(request)
        sink_sid = str(form.get("SinkSid", ""))
        try:
            wanted = [json.loads(str(value)) for value in form.getlist("Types")]
        except ValueError:
            return _error(400, 20001, "Invalid Types")
        with self.changed:
            if sink_sid not in self.sinks:
                return _error(400, 20001, f"Sink {sink_sid} not found")
            if self.sinks[sink_sid]["status"] != "active":
                return _error(400, 20001, "Sink must be active for the subscription to be created")
            if any(s.sink_sid == sink_sid for s in self.subscriptions.values()):
                return _error(409, 20409, "Sink already has a subscription")
            if not wanted:
                return _error(400, 20001, "Missing required parameter Types")
            types: dict[str, int] = {}
            for item in wanted:
                name = item.get("type")
                if name not in self.types or self.types[name]["status"] in ("restricted", "discontinued"):
                    return _error(400, 20001, f"Type {name} cannot be subscribed")
                types[name] = int(item.get("schema_version") or max(self.schemas[self.types[name]["schema_id"]]))
            sub = _Subscription(new_sid("DF"), str(form.get("Description", "")), sink_sid, types)
            self.subscriptions[sub.sid] = sub
            self._record("create", sub, "")
            return JSONResponse(self._subscription_json(sub), status_code=201)

    async def _subscription(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        with self.lock:
            if sid not in self.subscriptions:
                return self._not_found(request)
            if request.method == "DELETE":
                del self.subscriptions[sid]
                return Response(status_code=204)
            return JSONResponse(self._subscription_json(self.subscriptions[sid]))

    async def _subscribed_events(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        form = await _form(request) if request.method == "POST" else None
        with self.lock:
            sub = self.subscriptions.get(sid)
            if sub is None:
                return self._not_found(request)
            if form is None:
                return self._page(request, "types", [self._subscribed_json(sub, name) for name in sub.types])
            name = str(form.get("Type", ""))
            if name not in self.types:
                return _error(400, 20001, f"Unknown event type {name}")
            if self.types[name]["status"] in ("restricted", "discontinued"):
                return _error(400, 20001, f"Event type {name} is {self.types[name]['status']} and cannot be added")
            if name in sub.types:
                return _error(409, 20409, f"Event type {name} is already subscribed")
            published = self.schemas[self.types[name]["schema_id"]]
            version = int(str(form["SchemaVersion"])) if form.get("SchemaVersion") else max(published)
            if version not in published:
                return _error(400, 20001, f"Schema version {version} does not exist for {name}")
            fail = self._type_change()
            if fail == "before":
                return _error(500, 20500, "Internal Server Error", self._fail_headers)
            sub.types[name] = version
            self._record("add", sub, name)
            if fail == "after":
                return _error(500, 20500, "Internal Server Error", self._fail_headers)
            return JSONResponse(self._subscribed_json(sub, name), status_code=201)

    async def _subscribed_event(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        name = request.path_params["type"]
        form = await _form(request) if request.method == "POST" else None
        with self.lock:
            sub = self.subscriptions.get(sid)
            if sub is None or name not in sub.types:
                return self._not_found(request)
            if request.method == "GET":
                return JSONResponse(self._subscribed_json(sub, name))
            fail = self._type_change()
            if fail == "before":
                return _error(500, 20500, "Internal Server Error", self._fail_headers)
            if request.method == "DELETE":
                del sub.types[name]
                self._record("remove", sub, name)
                answer: Response = Response(status_code=204)
            else:
                assert form is not None
                sub.types[name] = int(str(form.get("SchemaVersion", sub.types[name])))
                self._record("update", sub, name)
                answer = JSONResponse(self._subscribed_json(sub, name))
            if fail == "after":
                return _error(500, 20500, "Internal Server Error", self._fail_headers)
            return answer


class _Gate:
    """Basic auth, throttling and the request log, in front of every route."""

    def __init__(self, app: Any, standin: EventStreamsStandIn) -> None:
        self.app = app
        self.standin = standin

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)

        async def recording_send(message: Any) -> None:
            # Logged before the answer leaves, so a client that has its answer finds the request logged.
            if message["type"] == "http.response.start":
                with self.standin.lock:
                    self.standin.requests.append((request.method, request.url.path, message["status"]))
            await send(message)

        early = self._early_answer(request)
        if early is not None:
            await early(scope, receive, recording_send)
        else:
            await self.app(scope, receive, recording_send)

    def _early_answer(self, request: Request) -> Response | None:
        if not _authorised(request.headers.get("authorization", "")):
            return _error(401, 20003, "Authenticate")
        with self.standin.lock:
            if self.standin._throttle:
                retry_after = self.standin._throttle.pop(0)
                return _error(429, 20429, "Too Many Requests", headers={"Retry-After": retry_after})
        return None


class _Form:
    """A form-encoded body (what twilio-python sends), read without python-multipart."""

    def __init__(self, body: bytes) -> None:
        self._values = parse_qs(body.decode(), keep_blank_values=True)

    def get(self, name: str, default: Any = None) -> Any:
        values = self._values.get(name)
        return values[0] if values else default

    def __getitem__(self, name: str) -> str:
        return self._values[name][0]

    def getlist(self, name: str) -> list[str]:
        return self._values.get(name, [])


async def _form(request: Request) -> _Form:
    return _Form(await request.body())


def _authorised(header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return any(
        secrets.compare_digest(user, u) and secrets.compare_digest(password, p)
        for u, p in ((ACCOUNT_SID, AUTH_TOKEN), (API_KEY, API_SECRET))
    )
