"""soco calls bounded by the adapter's own deadline, every failure turned into one DeviceError."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from soco.exceptions import SoCoUPnPException

from relaxd.core.ports import DeviceError

log = logging.getLogger(__name__)

T = TypeVar("T")
DEVICE = "speaker"


def device_error(what: str, exc: BaseException) -> DeviceError:
    """The one place a soco, requests or socket failure becomes a DeviceError."""
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, SoCoUPnPException):
        code = int(exc.error_code) if str(exc.error_code).isdigit() else None
        detail = exc.error_description or "no description"
        return DeviceError(DEVICE, f"{what}: UPnP error {exc.error_code} ({detail})", code=code)
    if isinstance(exc, requests.Timeout | socket.timeout | TimeoutError):
        return DeviceError(DEVICE, f"{what}: timed out")
    if isinstance(exc, requests.ConnectionError | ConnectionError):
        return DeviceError(DEVICE, f"{what}: cannot reach the speaker")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return DeviceError(DEVICE, f"{what}: HTTP {status}", code=status)
    return DeviceError(DEVICE, f"{what}: {type(exc).__name__}: {exc}")


class DeadlineCaller:
    """call(what, fn): fn() within timeout_s per request it makes; DeviceError on any failure.

    soco reads one process-wide `soco.config.REQUEST_TIMEOUT`. Rather than change that global,
    each library call runs in a short-lived worker thread that is waited on for at most
    `timeout_s` per request; a call that overruns is abandoned and reported (soco's own timeout
    still ends the worker). Adapters with different timeouts can so share a process.
    """

    def __init__(self, timeout_s: float, where: str) -> None:
        self.timeout_s = timeout_s
        self.where = where

    def __call__(self, what: str, fn: Callable[[], T], requests_n: int = 1, budget_s: float | None = None) -> T:
        deadline_s = budget_s if budget_s is not None else self.timeout_s * requests_n
        outcome: list[tuple[bool, Any]] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append((True, fn()))
            except Exception as exc:  # all of it is the library's; classified by device_error
                outcome.append((False, exc))
            finally:
                done.set()

        threading.Thread(target=run, name=f"sonos: {what}", daemon=True).start()
        if not done.wait(deadline_s):
            raise DeviceError(DEVICE, f"{what}: no answer from {self.where} within {deadline_s:g} s")
        ok, value = outcome[0]
        if not ok:
            log.debug("speaker %s: %s failed", self.where, what, exc_info=value)
            raise device_error(what, value) from value
        return value  # type: ignore[no-any-return]
