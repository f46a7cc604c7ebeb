"""Small per-room records in state_dir (the highest event number, the chosen routine): atomic, fsynced."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from relaxd.adapters.blocking import BlockingCalls, Fence
from relaxd.adapters.snapshot_store import FILE_BUDGET_S, as_oserror

MAX_RECORD_BYTES = 256  # a number or a routine name and a newline; anything longer is not relaxd's


class FileRoomRecords:
    """`state_dir/seq/<room>` holds one decimal number (no event of the room had a higher seq);
    `state_dir/routine/<room>` the routine the room's next start uses, as chosen over MQTT."""

    def __init__(self, state_dir: Path, calls: BlockingCalls) -> None:
        self.dir = Path(state_dir)
        self._fence: Fence = calls.fence(f"room records in {self.dir}", as_oserror)

    async def load(self, room: str) -> int | None:
        return await self._fence.call(f"reading the seq of {room}", lambda: self.load_seq_now(room), FILE_BUDGET_S)

    async def save(self, room: str, seq: int) -> None:
        await self._fence.call(
            f"saving the seq of {room}", lambda: self.write_now("seq", room, f"{seq}"), FILE_BUDGET_S
        )

    async def load_choice(self, room: str) -> str | None:
        return await self._fence.call(
            f"reading the routine of {room}", lambda: self.read_now("routine", room), FILE_BUDGET_S
        )

    async def save_choice(self, room: str, routine: str) -> None:
        await self._fence.call(
            f"saving the routine of {room}", lambda: self.write_now("routine", room, routine), FILE_BUDGET_S
        )

    def load_seq_now(self, room: str) -> int | None:
        text = self.read_now("seq", room)
        if text is None:
            return 0 if not (self.dir / "seq" / room).exists() else None
        return int(text) if text.isdigit() and len(text) < 64 else None

    def read_now(self, kind: str, room: str) -> str | None:
        """The record's text, or None when there is none or it is not one relaxd wrote."""
        try:
            with open(self.dir / kind / room, "rb") as handle:
                body = handle.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            return None
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
        return text if text and len(body) <= MAX_RECORD_BYTES else None

    def write_now(self, kind: str, room: str, text: str) -> None:
        directory = self.dir / kind
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{room}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(f"{text}\n".encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, directory / room)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
