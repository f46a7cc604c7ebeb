"""`relaxd hue pair`: the link-button flow, synchronous for the CLI, over the async bridge."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue.bridge import HueBridge
from relaxd.adapters.hue.transport import DEVICE, HttpsMode
from relaxd.core.ports import DeviceError

LINK_BUTTON_NOT_PRESSED = 101


def pair(
    host: str,
    https: HttpsMode = "auto",
    timeout_s: float = 5.0,
    wait_s: float = 30.0,
    on_tick: Callable[[float], None] | None = None,
    devicetype: str | None = None,
    poll_s: float = 1.0,
) -> str:
    """POST /api every poll_s until the link button is pressed; returns the username.

    on_tick(seconds_left) is called before each wait. devicetype defaults to "relaxd#<hostname>".
    Runs its own event loop and pool: call it where no loop runs (the CLI).
    """
    calls = BlockingCalls(workers=1)
    try:
        return asyncio.run(pair_async(host, calls, https, timeout_s, wait_s, on_tick, devicetype, poll_s))
    finally:
        calls.close()


async def pair_async(
    host: str,
    calls: BlockingCalls,
    https: HttpsMode = "auto",
    timeout_s: float = 5.0,
    wait_s: float = 30.0,
    on_tick: Callable[[float], None] | None = None,
    devicetype: str | None = None,
    poll_s: float = 1.0,
) -> str:
    """pair() on a running loop, with the caller's pool."""
    bridge = HueBridge(host, "", calls=calls, https=https, timeout_s=timeout_s)
    body = {"devicetype": devicetype or f"relaxd#{socket.gethostname()[:19]}"}
    deadline_s = time.monotonic() + wait_s
    while True:
        try:
            result = await bridge.request("pairing", "read", [], lambda b: b.request("POST", "/api", body))
        except DeviceError as exc:
            if exc.code != LINK_BUTTON_NOT_PRESSED:
                raise
        else:
            return _username(result)
        left_s = deadline_s - time.monotonic()
        if left_s <= 0:
            raise DeviceError(
                DEVICE,
                f"the link button on the bridge at {host} was not pressed within {wait_s:g} s: "
                "press the round button on the bridge, then pair again",
                code=LINK_BUTTON_NOT_PRESSED,
            )
        if on_tick is not None:
            on_tick(left_s)
        await asyncio.sleep(min(poll_s, left_s))


def _username(result: Any) -> str:
    try:
        username = result[0]["success"]["username"]
    except (LookupError, TypeError) as exc:
        raise DeviceError(DEVICE, "pairing: the bridge sent an unexpected answer") from exc
    if not isinstance(username, str) or not username:
        raise DeviceError(DEVICE, "pairing: the bridge sent an unexpected answer")
    return username
