"""Run-time schedules and schedule bookkeeping as one JSON file in state_dir: atomic, fsynced, 0600."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from relaxd.adapters.blocking import BlockingCalls, Fence
from relaxd.adapters.snapshot_store import FILE_BUDGET_S, as_oserror
from relaxd.core.events import iso_utc
from relaxd.core.schedule_config import WEEKDAYS, ScheduleConfig
from relaxd.core.schedules import Schedule, ScheduleBook

log = logging.getLogger(__name__)
FILE_NAME = "schedules.json"
# 100 run-time schedules and their bookkeeping are a few tens of KB; a larger file is not relaxd's.
MAX_SCHEDULE_FILE_BYTES = 1024 * 1024
FORMAT = 1


class FileScheduleStore:
    """`<state_dir>/schedules.json`: plain data (specs, ids, times), never pickled callables."""

    def __init__(self, state_dir: Path, calls: BlockingCalls) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        # Saves end in the order they were asked for, even when a caller stopped waiting.
        self._fence: Fence = calls.fence(f"state dir {self.state_dir}", as_oserror)

    async def load(self) -> ScheduleBook:
        return await self._fence.call("reading the schedules", self.load_now, FILE_BUDGET_S)

    async def save(self, book: ScheduleBook) -> None:
        body = json.dumps(_document(book), indent=1, sort_keys=True).encode()  # taken now, on the loop
        await self._fence.call("saving the schedules", lambda: self.save_now(body), FILE_BUDGET_S)

    def load_now(self) -> ScheduleBook:
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_SCHEDULE_FILE_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            # NotADirectoryError: state_dir is below a regular file, so nothing was ever saved there.
            return ScheduleBook()
        try:
            if len(raw) > MAX_SCHEDULE_FILE_BYTES:
                raise ValueError(f"larger than {MAX_SCHEDULE_FILE_BYTES // 1024} KiB")
            return _book(json.loads(raw))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # A damaged file is kept aside for a human, never half-trusted.
            aside = self.path.with_suffix(".corrupt")
            log.error(
                "schedule file %s is unreadable (%s); moved to %s, starting without run-time schedules",
                self.path,
                exc,
                aside,
            )
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return ScheduleBook()

    def save_now(self, body: bytes) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".schedules.", suffix=".tmp", dir=self.state_dir)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a power cut
        finally:
            os.close(dir_fd)


def _document(book: ScheduleBook) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schedules": [
            *(
                {
                    "id": s.id,
                    "created_at": iso_utc(s.created_at),
                    "spec": s.spec.model_dump(mode="json", exclude_none=True),
                }
                for s in book.runtime
            ),
            *book.unreadable,
        ],
        "checked": {k: iso_utc(v) for k, v in sorted(book.checked.items())},
        "anchors": {k: v.isoformat() for k, v in sorted(book.anchors.items())},
    }


def _book(doc: Any) -> ScheduleBook:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a relaxd schedule file of format 1")
    book = ScheduleBook()
    for record in doc.get("schedules", []):
        try:
            spec = ScheduleConfig.model_validate(_with_weekday(record["spec"]))
            created = record.get("created_at")
            book.runtime.append(
                Schedule(
                    id=str(record["id"]),
                    origin="runtime",
                    spec=spec,
                    created_at=datetime.fromisoformat(created) if created else None,
                )
            )
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            # One bad record (a hand edit, another version) must not cost the others; it is kept.
            log.error(
                "run-time schedule %r in the schedule file is invalid and ignored: %s",
                record.get("id") if isinstance(record, dict) else record,
                exc,
            )
            if isinstance(record, dict):
                book.unreadable.append(record)
    book.checked = {str(k): datetime.fromisoformat(v) for k, v in dict(doc.get("checked", {})).items()}
    book.anchors = {str(k): date.fromisoformat(v) for k, v in dict(doc.get("anchors", {})).items()}
    return book


def _with_weekday(spec: Any) -> Any:
    """A run-time `every N weeks` saved without `on` (accepted before `on` was required) goes on
    firing on its starting date's weekday, as it always did, instead of being lost."""
    if not isinstance(spec, dict) or spec.get("on") is not None or "week" not in str(spec.get("every", "")):
        return spec
    try:
        weekday = date.fromisoformat(str(spec.get("starting"))).weekday()
    except ValueError:
        return spec
    day = WEEKDAYS[weekday]
    log.info("run-time schedule every %s without a weekday: on %s, its starting date's", spec["every"], day)
    return {**spec, "on": day}
