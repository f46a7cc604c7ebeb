"""Each room's highest event number as a small file in state_dir: atomic, fsynced, behind one fence."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from relaxd.adapters.blocking import BlockingCalls, Fence
from relaxd.adapters.snapshot_store import FILE_BUDGET_S, as_oserror

MAX_SEQ_FILE_BYTES = 64  # a decimal number and a newline; anything longer is not relaxd's


class FileSeqStore:
    """`state_dir/seq/<room>` holds one decimal number: no event of the room ever had a higher seq."""

    def __init__(self, state_dir: Path, calls: BlockingCalls) -> None:
        self.dir = Path(state_dir) / "seq"
        self._fence: Fence = calls.fence(f"seq files in {self.dir}", as_oserror)

    async def load(self, room: str) -> int | None:
        return await self._fence.call(f"reading the seq of {room}", lambda: self.load_now(room), FILE_BUDGET_S)

    async def save(self, room: str, seq: int) -> None:
        await self._fence.call(f"saving the seq of {room}", lambda: self.save_now(room, seq), FILE_BUDGET_S)

    def load_now(self, room: str) -> int | None:
        try:
            with open(self.dir / room, "rb") as handle:
                body = handle.read(MAX_SEQ_FILE_BYTES + 1)
        except FileNotFoundError:
            return 0
        text = body.decode("ascii", "replace").strip()
        if len(body) > MAX_SEQ_FILE_BYTES or not text.isdigit():
            return None
        return int(text)

    def save_now(self, room: str, seq: int) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{room}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(f"{seq}\n".encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.dir / room)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
