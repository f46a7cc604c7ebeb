"""One room's engine: its lifecycle (core/lifecycle.py) driven on the event loop, device work as tasks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Coroutine, Mapping
from datetime import datetime
from typing import Any

from relaxd.core.events import DEFAULT_EXTEND_MINUTES, Command, Event, RoomState, iso_utc
from relaxd.core.lifecycle import PUBLIC, LifeState, decide
from relaxd.core.ports import Clock, EventBus, TimerHandle
from relaxd.core.room import RestoreOutcome, Room, SnapshotNotSaved
from relaxd.core.routines import Routine
from relaxd.core.timeline import Session

log = logging.getLogger(__name__)
MAX_RESTORE_BACKOFF_S = 300.0


class RoomEngine:
    """Drives one room. Every input is queued and handled in run(), one at a time, never blocking:
    what touches devices runs as a task whose outcome comes back as another input."""

    def __init__(
        self,
        room: Room,
        bus: EventBus,
        clock: Clock,
        routines: Mapping[str, Routine],
        *,
        default_routine: str = "classic",
        retry_every_s: float = 10.0,
    ) -> None:
        self.room = room
        self.room_id = room.room_id
        self.bus = bus
        self.clock = clock
        self.routines = dict(routines)
        self.selected_routine = default_routine
        self.retry_every_s = retry_every_s
        self.life: LifeState = "idle"
        self.session: Session | None = None
        self.next_session_at: datetime | None = None
        self.pong = 0  # the last liveness ping handled (the watchdog's proof that run() is alive)
        self._seq = 0
        self._inbox: deque[tuple[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._work: asyncio.Task[Any] | None = None  # the start or restore in progress
        self._checking: asyncio.Task[Any] | None = None  # a device retry or health check
        self._stop_when_started: Command | None = None
        self._next_retry: float | None = None
        self._next_restore: float | None = None
        self._restore_backoff_s = retry_every_s
        self._stopping = False
        self._restoring_id: str | None = None  # the session whose room is being given back
        self._last_state: dict[str, Any] = RoomState(room=self.room_id, state="idle").payload()
        room.on_event = self._device_event

    # --- inputs (on the loop; any task) --------------------------------------------------------

    def _put(self, kind: str, value: Any = None) -> None:
        self._inbox.append((kind, value))
        self._wake.set()

    def submit(self, command: Command) -> None:
        self._put("command", command)

    def reject(self, reason: str, transaction: str | None = None) -> None:
        """Report a command that never became a Command (malformed payload)."""
        self._put("reject", (reason, transaction))

    def select_routine(self, name: str) -> None:
        self._put("select", name)

    def set_next_session_at(self, moment: datetime | None) -> None:
        self._put("next_session_at", moment)

    def report(self, name: str, fields: dict[str, Any]) -> None:
        """Emit an event for another part of the daemon (the scheduler) in this room's seq."""
        self._put("emit", (name, fields))

    def check_devices(self) -> None:
        """A health check of every device, unless the room is busy with them anyway."""
        self._put("check")

    def ping(self, token: int) -> None:
        self._put("ping", token)

    def status(self) -> dict[str, Any]:
        return dict(self._last_state)

    @property
    def public_state(self) -> str:
        return PUBLIC[self.life]

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """The room's task: handle inputs and due deadlines until cancelled; a bug is reported, not fatal."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._drain()
            self._guard("due", None)
            self._arm_timer()

    def _guard(self, kind: str, value: Any) -> None:
        try:
            self._handle(kind, value)
        except Exception as exc:
            self._internal_error(exc)

    def _handle(self, kind: str, value: Any) -> None:
        if kind == "command":
            self._command(value)
        elif kind == "reject":
            reason, transaction = value
            self._emit("command_rejected", {"reason": reason, "transaction": transaction})
        elif kind == "select":
            self._select(value)
        elif kind == "next_session_at":
            if value != self.next_session_at:
                self.next_session_at = value
                self._publish_state()
        elif kind == "emit":
            self._emit(*value)
        elif kind == "ping":
            self.pong = value
        elif kind == "check":
            self._health_check()
        elif kind == "started":
            self._started(*value)
        elif kind == "restored":
            self._restored(value)
        elif kind == "retried":
            self._schedule_retry()
        elif kind == "due":
            self._advance()

    def _internal_error(self, exc: Exception) -> None:
        """A bug: said with its traceback and as an event; the room is given back and goes on serving."""
        log.exception("room %s: internal error", self.room_id)
        reason = f"{type(exc).__name__}: {exc}"[:300]
        try:
            self._emit("internal_error", {**self._session_fields(), "reason": reason})
            if self.life in ("running", "paused"):
                self._emit("session_stopped", self._session_fields(reason="internal_error", ended=True))
                self._begin_restore()
        except Exception:
            log.exception("room %s: cannot even report the internal error", self.room_id)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.seconds_until_due()
        if due is not None:
            self._timer = self.clock.call_later(due, self._wake.set)

    def seconds_until_due(self) -> float | None:
        due = [t for t in (self._next_retry, self._next_restore) if t is not None]
        s = self.session
        if s is not None and self.life == "running" and not self._stopping:
            due.append(s.phase_end(s.phase_index))
            if s.next_check_in is not None:
                due.append(s.next_check_in)
        return max(0.0, min(due) - self.clock.monotonic()) if due else None

    def _advance(self) -> None:
        now = self.clock.monotonic()
        s = self.session
        if s is not None and self.life == "running" and not self._stopping:
            if now >= s.phase_end(s.phase_index):
                if s.is_last_phase:
                    self._emit("session_finished", self._session_fields(reason="completed", ended=True))
                    self._begin_restore()
                    return
                # A late wake-up (suspend, overload) lands in the phase the timeline says, once.
                index = s.phase_index + 1
                while index + 1 < len(s.routine.phases) and now >= s.phase_end(index):
                    index += 1
                self._enter_phase(index)
            if s.next_check_in is not None and now >= s.next_check_in:
                every = s.routine.check_in_every or 0.0
                while s.next_check_in <= now:
                    s.next_check_in += every
                self._emit("check_in", self._phase_fields())
        if self._next_retry is not None and now >= self._next_retry:
            self._next_retry = None
            self._spawn_check(self.room.retry(), then_retry=True)
        if self._next_restore is not None and now >= self._next_restore and self.life == "restore_pending":
            self._next_restore = None
            self._begin_restore()

    # --- commands -----------------------------------------------------------------------------

    def _command(self, cmd: Command) -> None:
        decision = decide(self.life, cmd.action)
        if self._stopping and decision.step is not None:
            decision = decide("restoring", cmd.action)  # shutting down: nothing new starts
        if decision.step is None:
            if cmd.schedule_id is not None:
                # A schedule never interrupts a running session; it reports the run it skipped.
                busy = {"state": self.public_state, "session_id": self.session.session_id if self.session else None}
                self._schedule_missed(cmd, "room_busy", busy)
                return
            reason = decision.reason or "rejected"
            if self.life == "restore_pending" and self._next_restore is not None:
                reason += f" (the last restore failed; next try in {self._next_restore - self.clock.monotonic():.0f} s)"
            self._reject(cmd, reason)
            return
        getattr(self, f"_do_{decision.step}")(cmd)

    def _reject(self, cmd: Command | None, reason: str) -> None:
        if cmd is not None and cmd.schedule_id is not None:
            self._schedule_missed(cmd, "start_failed", {"error": reason})
            return
        log.info("room %s: command rejected: %s", self.room_id, reason)
        self._emit("command_rejected", {"reason": reason, "transaction": cmd.transaction if cmd else None})

    def _schedule_missed(self, cmd: Command, reason: str, details: dict[str, Any]) -> None:
        log.warning("room %s: schedule %s missed: %s", self.room_id, cmd.schedule_id, reason)
        fields = {"reason": reason, "schedule_id": cmd.schedule_id, "routine": cmd.routine}
        self._emit("schedule_missed", {**fields, "details": {**(cmd.schedule_details or {}), **details}})

    def _do_start(self, cmd: Command) -> None:
        name = cmd.routine or self.selected_routine
        routine = self.routines.get(name)
        if routine is None:
            self._reject(cmd, f"unknown routine {name!r}; known: {', '.join(sorted(self.routines))}")
            return
        session = Session(
            session_id=uuid.uuid4().hex[:12],
            routine_name=name,
            routine=routine,
            start_mono=self.clock.monotonic(),
            started_at=self.clock.now(),
        )
        self.life = "starting"
        self._stop_when_started = None
        meta = {"session_id": session.session_id, "routine": name, "started_at": iso_utc(session.started_at)}
        self._work = self._spawn(self._start(session, cmd, meta))

    async def _start(self, session: Session, cmd: Command, meta: dict[str, Any]) -> None:
        error: SnapshotNotSaved | None = None
        try:
            await self.room.begin(meta)
        except SnapshotNotSaved as exc:
            error = exc
        except Exception as exc:  # a bug while snapshotting: nothing was changed yet, so say so and go on
            self._internal_error(exc)
            await self.room.discard()
            error = SnapshotNotSaved(f"internal error while taking the snapshot ({type(exc).__name__})")
        self._put("started", (session, cmd, error))

    def _started(self, session: Session, cmd: Command, error: SnapshotNotSaved | None) -> None:
        self._work = None
        if error is not None:
            log.error("room %s: %s", self.room_id, error)
            self.life = "idle"
            self._reject(cmd, f"{error}; nothing was changed")
            self._publish_state()
            return
        # The timeline starts when the room is ours: a slow snapshot does not eat the first phase.
        now = self.clock.monotonic()
        session.start_mono = now
        session.started_at = self.clock.now()
        if session.routine.check_in_every:
            session.next_check_in = now + session.routine.check_in_every
        session.enter(0, now)
        self.session = session
        self.life = "running"
        log.info(
            "room %s: session %s started (routine %s, %s)",
            self.room_id,
            session.session_id,
            session.routine_name,
            cmd.source,
        )
        started = {**self._session_fields(cmd.source), "transaction": cmd.transaction, "schedule_id": cmd.schedule_id}
        self._emit("session_started", started)
        if cmd.schedule_id is not None:
            fired = {**self._session_fields(), "schedule_id": cmd.schedule_id, "details": cmd.schedule_details}
            self._emit("schedule_fired", fired)
        stop = self._stop_when_started
        if stop is not None or self._stopping:
            # Stopped while the snapshot was taken: nothing in the room changed, nothing to restore.
            self._stop_when_started = None
            reason = "shutdown" if self._stopping else (stop.source if stop else None)
            self._emit(
                "session_stopped",
                {**self._session_fields(reason, ended=True), "transaction": stop.transaction if stop else None},
            )
            self.life = "restoring"
            self._work = self._spawn(self._discard())
            return
        self._enter_phase(0)
        self._schedule_retry()

    async def _discard(self) -> None:
        await self.room.discard()
        self._put("restored", RestoreOutcome(ok=True, details={}))

    def _do_stop_when_started(self, cmd: Command) -> None:
        self._stop_when_started = cmd

    def _do_stop(self, cmd: Command) -> None:
        log.info("room %s: session stopped (%s)", self.room_id, cmd.source)
        self._emit("session_stopped", {**self._session_fields(cmd.source, ended=True), "transaction": cmd.transaction})
        self._begin_restore()

    def _do_retry_restore(self, cmd: Command) -> None:
        self._next_restore = None
        self._begin_restore()

    def _do_pause(self, cmd: Command) -> None:
        assert self.session is not None
        self.session.paused_at = self.clock.monotonic()
        self.life = "paused"
        self._emit("session_paused", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _do_resume(self, cmd: Command) -> None:
        s = self.session
        assert s is not None and s.paused_at is not None
        held = self.clock.monotonic() - s.paused_at
        s.offset_s += held
        if s.next_check_in is not None:
            s.next_check_in += held
        s.paused_at = None
        self.life = "running"
        self._emit("session_resumed", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _do_skip(self, cmd: Command) -> None:
        s = self.session
        assert s is not None
        s.offset_s -= s.phase_end(s.phase_index) - self.clock.monotonic()
        if not s.is_last_phase:
            self._enter_phase(s.phase_index + 1, cmd.transaction)
        else:
            fields = {**self._session_fields(reason="skipped", ended=True), "transaction": cmd.transaction}
            self._emit("session_finished", fields)
            self._begin_restore()

    def _do_extend(self, cmd: Command) -> None:
        s = self.session
        assert s is not None
        s.offset_s += (cmd.minutes or DEFAULT_EXTEND_MINUTES) * 60
        self._emit("session_extended", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _select(self, name: str) -> None:
        if name not in self.routines:
            self._reject(None, f"unknown routine {name!r}")
            return
        self.selected_routine = name
        self._publish_state()

    # --- phases and restore -------------------------------------------------------------------

    def _enter_phase(self, index: int, transaction: str | None = None) -> None:
        s = self.session
        assert s is not None
        s.enter(index, self.clock.monotonic())
        log.info("room %s: phase %s (%d/%d)", self.room_id, s.phase.name, index + 1, len(s.routine.phases))
        # The event and the state first: followers never wait for a bridge busy with other rooms.
        self._emit("phase_started", {**self._phase_fields(), "transaction": transaction})
        self._publish_state()
        self.room.apply(s.phase)

    def _begin_restore(self) -> None:
        self._restoring_id = self.session.session_id if self.session else self.room.session_id
        self.life = "restoring"
        self._next_retry = None  # restore retries have their own backoff
        self._next_restore = None
        self._publish_state()
        self._work = self._spawn(self._restore())

    async def _restore(self) -> None:
        try:
            outcome = await self.room.restore()
        except Exception as exc:  # a bug while restoring (e.g. saving the snapshot): retried like any failure
            self._internal_error(exc)
            outcome = RestoreOutcome(ok=False, errors={"relaxd": f"internal error: {type(exc).__name__}: {exc}"})
        self._put("restored", outcome)

    def _restored(self, outcome: RestoreOutcome) -> None:
        self._work = None
        base = self._session_fields() if self.session else {"session_id": self._restoring_id}
        if outcome.ok:
            log.info("room %s: room restored", self.room_id)
            self._emit("room_restored", {**base, "details": outcome.details})
            self.session = None
            self.life = "idle"
            self._restore_backoff_s = self.retry_every_s
        else:
            reason = "; ".join(f"{d}: {e}" for d, e in sorted(outcome.errors.items()))
            retry_in_s = self._restore_backoff_s
            log.warning("room %s: restore failed (%s); trying again in %.0f s", self.room_id, reason, retry_in_s)
            self._emit(
                "restore_failed", {**base, "reason": reason, "details": {**outcome.details, "retry_in_s": retry_in_s}}
            )
            self.life = "restore_pending"
            self._next_restore = self.clock.monotonic() + retry_in_s
            self._restore_backoff_s = min(self._restore_backoff_s * 2, MAX_RESTORE_BACKOFF_S)
        self._publish_state()

    # --- start-up and shutdown (awaited by the daemon) ------------------------------------------

    async def recover(self) -> None:
        """At start-up: restore a room left changed by a daemon that died mid-session."""
        if await self.room.load_leftover():
            meta = self.room.meta
            log.warning("room %s: restoring after an unfinished session (%s)", self.room_id, meta.get("session_id"))
            stopped = {"session_id": meta.get("session_id"), "routine": meta.get("routine"), "reason": "crashed"}
            self._emit("session_stopped", {k: v for k, v in stopped.items() if isinstance(v, str)})
            self._begin_restore()
            return
        if self.room.leftover_problem:
            # Nothing to retry: the room may still be as a crashed session left it, so say so.
            reason = f"{self.room.leftover_problem}; the room could not be restored automatically"
            self._emit("restore_failed", {"reason": reason})
        await self.room.check()
        self._publish_state()

    async def shutdown(self, retry_every_s: float = 1.0) -> bool:
        """No phase starts any more; the session is stopped and the room restored, retried every
        retry_every_s until the caller's deadline cancels this. True when the room is given back (or
        nothing had to be); a room that cannot be restored keeps its snapshot for the next start."""
        self._stopping = True
        self._next_retry = None
        if self._timer is not None:
            self._timer.cancel()
        if self._checking is not None:
            self._checking.cancel()
        self._drain()
        if self.life == "starting" and self._work is not None:
            self._work.cancel()  # nothing was changed yet; begin() drops its snapshot
            await asyncio.gather(self._work, return_exceptions=True)
            self._work = None
            self._drain()
            if self.life == "starting":
                self.life = "idle"
                self._publish_state()
        if self.life in ("running", "paused"):
            self._emit("session_stopped", self._session_fields(reason="shutdown", ended=True))
            self._begin_restore()
        while self.life in ("restoring", "restore_pending"):
            if self.life == "restore_pending":
                await self.clock.sleep(retry_every_s * self.clock.speed)
                if self.life == "restore_pending":
                    self._begin_restore()
            if self._work is not None:
                await asyncio.gather(self._work, return_exceptions=True)
            await asyncio.sleep(0)
            self._drain()
        return self.life == "idle" and not self.room.has_pending_restore

    def _drain(self) -> None:
        while self._inbox:
            kind, value = self._inbox.popleft()
            self._guard(kind, value)

    # --- device checks ------------------------------------------------------------------------

    def _health_check(self) -> None:
        if self.life in ("starting", "restoring") or (self._checking is not None and not self._checking.done()):
            return  # the devices are being used right now: failures show there
        self._spawn_check(self.room.check())

    def _spawn_check(self, work: Coroutine[Any, Any, None], *, then_retry: bool = False) -> None:
        async def checked() -> None:
            await work
            if then_retry:
                self._put("retried")

        self._checking = self._spawn(checked())

    def _schedule_retry(self) -> None:
        if self.session is not None and self.life in ("running", "paused") and self.room.needs_retry:
            self._next_retry = self.clock.monotonic() + self.retry_every_s

    def _device_event(self, name: str, fields: dict[str, Any]) -> None:
        self._emit(name, {**self._session_fields(), **fields} if self.session else fields)
        self._publish_state()
        if name == "device_unavailable" and self.life in ("running", "paused") and self._next_retry is None:
            self._next_retry = self.clock.monotonic() + self.retry_every_s
            self._wake.set()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=f"room {self.room_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and isinstance(task.exception(), Exception):
            self._internal_error(task.exception())  # type: ignore[arg-type]

    def pending_work(self) -> list[asyncio.Task[Any]]:
        """The room's tasks still running (a start, a restore, a check, scene work)."""
        return [t for t in (*self._tasks, *self.room.work_tasks()) if not t.done()]

    async def close(self) -> None:
        """Cancel every task of the room (after shutdown, or in tests)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()

    # --- payloads -----------------------------------------------------------------------------

    def _session_fields(self, reason: str | None = None, *, ended: bool = False) -> dict[str, Any]:
        if self.session is None:
            return {"reason": reason}
        return self.session.session_fields(self.clock, paused=self.life == "paused", reason=reason, ended=ended)

    def _phase_fields(self) -> dict[str, Any]:
        assert self.session is not None
        return self.session.phase_fields(self.clock, paused=self.life == "paused")

    def _emit(self, name: str, fields: dict[str, Any]) -> None:
        self._seq += 1
        at = iso_utc(self.clock.now()) or ""
        kept = {k: v for k, v in fields.items() if v is not None}
        event = Event(event=name, room=self.room_id, at=at, seq=self._seq, **kept)  # type: ignore[arg-type]
        self.bus.publish_event(self.room_id, event.payload())

    def _publish_state(self) -> None:
        s = self.session
        state = RoomState(
            room=self.room_id,
            state=PUBLIC[self.life],
            routine=self.selected_routine,
            next_session_at=iso_utc(self.next_session_at),
            devices={n: "online" if up else "offline" for n, up in self.room.online.items()},
        )
        if s is not None and self.life in ("running", "paused", "restoring", "restore_pending"):
            s.fill_state(state, self.clock, running=self.life == "running")
        payload = state.payload()
        self._last_state = payload
        self.bus.publish_state(self.room_id, payload, state.phase or "idle")
