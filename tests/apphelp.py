"""``AppHarness``: an ASGI app run as a server would run it (lifespan included), for synchronous tests.

The app's lifespan and an httpx client share one event loop in a background thread (anyio's blocking portal), so
a test calls coroutines with :meth:`AppHarness.call` and reads the app's state between calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.from_thread
import httpx

__all__ = ["AppHarness"]


class AppHarness:
    """Runs ``app`` (lifespan, then an httpx client over ASGI) until the ``with`` block ends."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bridge = app.state.bridge
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> AppHarness:
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._stack.enter_context(self.portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app)))
        transport = httpx.ASGITransport(app=self.app)
        self.client = self._stack.enter_context(
            self.portal.wrap_async_context_manager(httpx.AsyncClient(transport=transport, base_url="http://bridge"))
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        return self.portal.call(lambda: fn(*args, **kwargs))
