"""The event loop a node runs on: uvloop when installed (faster sockets), else asyncio's."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def new_event_loop(*, prefer_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A new event loop, and a log line saying which kind."""
    if prefer_uvloop:
        try:
            import uvloop
        except ImportError:
            log.info("event loop: asyncio (uvloop not installed)")
        else:
            log.info("event loop: uvloop %s", getattr(uvloop, "__version__", "?"))
            return uvloop.new_event_loop()
    else:
        log.info("event loop: asyncio")
    return asyncio.new_event_loop()
