"""`relaxd hue pair`: the link-button flow and the bridge's identity, synchronous for the CLI, over the async bridge."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue.bridge import HueBridge
from relaxd.adapters.hue.identity import Identity, IdentityError
from relaxd.adapters.hue.transport import DEVICE, HttpsMode
from relaxd.core.ports import DeviceError

LINK_BUTTON_NOT_PRESSED = 101


@dataclass(frozen=True)
class Paired:
    """What pairing found out: the username (a secret) and who the bridge is."""

    username: str
    bridge_id: str | None
    # SHA-256 of the certificate the bridge presented (None over plain HTTP: nothing to pin).
    fingerprint: str | None
    https: bool


def pair(
    host: str,
    https: HttpsMode = "auto",
    timeout_s: float = 5.0,
    wait_s: float = 30.0,
    on_tick: Callable[[float], None] | None = None,
    devicetype: str | None = None,
    poll_s: float = 1.0,
    identity: Identity | None = None,
) -> Paired:
    """POST /api every poll_s until the link button is pressed; the username and the bridge's identity.

    Over HTTPS the first certificate the bridge presents is pinned for the whole pairing (trust on
    first use; identity: check a known one instead). on_tick(seconds_left) is called before each wait.
    devicetype defaults to "relaxd#<hostname>". Runs its own event loop and pool: call it where no
    loop runs (the CLI).
    """
    calls = BlockingCalls(workers=1)
    try:
        return asyncio.run(pair_async(host, calls, https, timeout_s, wait_s, on_tick, devicetype, poll_s, identity))
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
    identity: Identity | None = None,
) -> Paired:
    """pair() on a running loop, with the caller's pool."""
    known = identity if identity is not None else Identity(learn=True)
    bridge = HueBridge(host, "", calls=calls, https=https, timeout_s=timeout_s, identity=known)
    body = {"devicetype": devicetype or f"relaxd#{socket.gethostname()[:19]}"}
    deadline_s = time.monotonic() + wait_s
    while True:
        try:
            result = await bridge.request("pairing", "read", [], lambda b: b.request("POST", "/api", body))
        except DeviceError as exc:
            if exc.code != LINK_BUTTON_NOT_PRESSED:
                raise
        else:
            return await _identified(bridge, _username(result))
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


async def _identified(bridge: HueBridge, username: str) -> Paired:
    """The bridge id it reports (over the same checked connection) and the certificate it presented."""
    bridge.hide(username)
    config = await bridge.request("reading config", "read", [], lambda b: b.request("GET", f"/api/{username}/config"))
    reported = config.get("bridgeid") if isinstance(config, dict) else None
    bridge_id = reported.upper() if isinstance(reported, str) and reported else None
    transport = bridge.transport
    if transport.scheme != "https":
        return Paired(username, bridge_id, None, https=False)
    seen = transport.verifier.learned
    fingerprint = seen.fingerprint if seen is not None else transport.identity.fingerprint
    common_name = seen.common_name if seen is not None else None
    if seen is not None and (common_name or "").upper() != (bridge_id or ""):
        raise IdentityError(
            f"the certificate of the bridge at {bridge.host} names {common_name or 'nothing'}, but it says it is "
            f"bridge {bridge_id or '?'}: that is not a Hue bridge's certificate"
        )
    return Paired(username, bridge_id or transport.identity.bridge_id, fingerprint, https=True)
