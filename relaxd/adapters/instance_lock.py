"""One `relaxd run` per state_dir: an exclusive lock on `<state_dir>/relaxd.lock` (flock, released on exit)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = "relaxd.lock"


class AlreadyRunning(Exception):
    """Another relaxd holds the state_dir."""


class InstanceLock:
    """Held for the daemon's whole life; the kernel drops it when the process ends, even on kill -9."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; AlreadyRunning when another process has it. False (with an error logged) when
        the state dir cannot even hold a lock file: then nothing can be saved there, so no session can
        start and two daemons cannot change a room either."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.error("cannot create the lock file %s (%s); running without it", self.path, exc.strerror or exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise AlreadyRunning(
                f"another relaxd{who} is running with state_dir {self.path.parent}; "
                "stop it first, or give this one its own state_dir"
            ) from None
        self._fd = fd
        with contextlib.suppress(OSError):  # a full disk must not stop the daemon that holds the lock
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return True

    def release(self) -> None:
        # The file stays: unlinking it would let a third process lock a new file beside a waiting one.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
