"""Room snapshots as JSON files in state_dir: atomic, fsynced, 0600 in a 0700 directory."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from relaxd.adapters.blocking import BlockingCalls, Fence
from relaxd.core.ports import SnapshotData

log = logging.getLogger(__name__)
_SUFFIX = ".snapshot.json"
FILE_BUDGET_S = 60.0  # a write that has not ended by then is reported; it cannot be aborted
# A snapshot is a few KB (a long saved queue: a few hundred KB); a larger file is not relaxd's.
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024


def as_oserror(what: str, exc: BaseException) -> Exception:
    """The stores' error wrapper: the port promises OSError for anything the state dir does."""
    if isinstance(exc, OSError):
        return exc
    return OSError(f"{what}: {type(exc).__name__}: {exc}")


class FileSnapshotStore:
    """One `<room>.snapshot.json` per room with a session (or an unfinished restore).

    The file work runs in the blocking pool behind one fence, so that a write whose caller was
    cancelled (shutdown) still ends before the next write or delete of the state dir begins.
    """

    def __init__(self, state_dir: Path, calls: BlockingCalls) -> None:
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "snapshots"
        self._problems: dict[str, str] = {}
        self._fence: Fence = calls.fence(f"state dir {self.state_dir}", as_oserror)

    async def save(self, room: str, data: SnapshotData) -> None:
        body = json.dumps({"format": 1, "room": room, "data": data}, sort_keys=True).encode()
        await self._fence.call(f"saving the snapshot of {room}", lambda: self.save_now(room, body), FILE_BUDGET_S)

    async def load(self, room: str) -> SnapshotData | None:
        return await self._fence.call(f"reading the snapshot of {room}", lambda: self.load_now(room), FILE_BUDGET_S)

    async def delete(self, room: str) -> None:
        await self._fence.call(f"removing the snapshot of {room}", lambda: self.delete_now(room), FILE_BUDGET_S)

    def _ensure_dir(self) -> None:
        for directory in (self.state_dir, self.dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def _path(self, room: str) -> Path:
        return self.dir / f"{room}{_SUFFIX}"

    def save_now(self, room: str, body: bytes) -> None:
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(prefix=f".{room}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path(room))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.dir)

    def load_now(self, room: str) -> SnapshotData | None:
        path = self._path(room)
        self._problems.pop(room, None)
        self._remove_torn_temporaries(room)
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_SNAPSHOT_BYTES + 1)  # never the whole of a huge file
        except (FileNotFoundError, NotADirectoryError):
            return None  # no snapshot (or state_dir is not even a directory: nothing was saved there)
        except OSError as exc:
            # Unreadable is not the same as absent; but a daemon that dies here cannot restore either.
            log.error(
                "cannot read the snapshot of room %s (%s); a room left changed by a crash is NOT "
                "restored until the file can be read and relaxd restarts",
                room,
                exc,
            )
            self._problems[room] = f"the snapshot of an unfinished session cannot be read ({exc.strerror or exc})"
            return None
        try:
            if len(raw) > MAX_SNAPSHOT_BYTES:
                raise ValueError(f"larger than {MAX_SNAPSHOT_BYTES // (1024 * 1024)} MiB")
            doc: Any = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != 1 or doc.get("room") != room:
                raise ValueError("not a relaxd snapshot")
            data = doc["data"]
            if not isinstance(data, dict):
                raise ValueError("snapshot data is not an object")
        except (ValueError, KeyError, RecursionError) as exc:
            # os.replace makes a torn write impossible; a damaged file is kept aside, not trusted.
            aside = self.set_aside_now(room, f"unreadable ({exc})")
            self._problems[room] = f"the snapshot of an unfinished session was unreadable ({exc}); moved to {aside}"
            return None
        return data

    async def set_aside(self, room: str, why: str) -> str | None:
        return await self._fence.call(
            f"setting the snapshot of {room} aside", lambda: self.set_aside_now(room, why), FILE_BUDGET_S
        )

    def set_aside_now(self, room: str, why: str) -> str | None:
        path = self._path(room)
        aside = path.with_suffix(".corrupt")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("snapshot of room %s is %s, and cannot be moved aside: %s", room, why, exc)
            return None
        log.error("snapshot of room %s is %s; moved to %s", room, why, aside)
        return str(aside)

    def _remove_torn_temporaries(self, room: str) -> None:
        """A crash between mkstemp and os.replace leaves a temporary file that never becomes the
        snapshot; load() runs before this process saves anything, so none of them is in use."""
        try:
            torn = list(self.dir.glob(f".{room}.*.tmp"))
        except OSError:
            return
        for tmp in torn:
            log.warning("removing %s, a snapshot a crashed relaxd never finished writing", tmp)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def problem(self, room: str) -> str | None:
        return self._problems.get(room)

    def delete_now(self, room: str) -> None:
        try:
            self._path(room).unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.dir)

    def rooms(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name[: -len(_SUFFIX)] for p in self.dir.glob(f"*{_SUFFIX}"))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
