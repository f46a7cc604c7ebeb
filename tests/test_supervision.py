"""Supervised tasks, the watchdog fed only by live rooms, and one relaxd per state_dir."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relaxd.adapters.instance_lock import AlreadyRunning, InstanceLock
from relaxd.app.health import feed_watchdog
from relaxd.app.supervisor import Supervisor
from tests.engine_rig import MakeRig
from tests.mosquitto import wait_until


async def test_a_task_that_fails_is_logged_and_started_again(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(restart_first_s=0.01)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise TypeError("a bug")
        await asyncio.Event().wait()

    supervisor.spawn("flaky", flaky)
    for _ in range(100):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.01)
    assert runs == [0, 1, 2] and supervisor.failures == {"flaky": 2} and supervisor.alive() == ["flaky"]
    assert caplog.text.count("task flaky failed; starting it again") == 2 and "TypeError: a bug" in caplog.text
    await supervisor.stop()
    assert supervisor.alive() == []


async def test_the_watchdog_is_fed_only_while_every_room_answers(make_rig: MakeRig) -> None:
    rigs = {"a": make_rig(), "b": make_rig()}
    engines = {name: rig.engine for name, rig in rigs.items()}
    supervisor = Supervisor()
    notes: list[str] = []

    def notify(message: str) -> bool:  # as systemd.notify: True when sent
        notes.append(message)
        return True

    watchdog = asyncio.create_task(feed_watchdog(engines, supervisor, 0.02, notify))
    await asyncio.sleep(0.15)
    fed = len(notes)
    assert fed >= 3 and set(notes) == {"WATCHDOG=1"}
    # Room b's loop dies (as a room thread did, silently): the watchdog stops at once.
    assert rigs["b"].task is not None
    rigs["b"].task.cancel()
    await asyncio.sleep(0.15)
    assert len(notes) <= fed + 1
    watchdog.cancel()
    await asyncio.gather(watchdog, return_exceptions=True)


def test_a_second_lock_on_the_same_state_dir_is_refused_with_the_holder(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path / "state")
    assert first.acquire() is True
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        InstanceLock(tmp_path / "state").acquire()
    first.release()
    again = InstanceLock(tmp_path / "state")
    assert again.acquire() is True
    again.release()


def test_the_lock_of_a_killed_relaxd_is_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from relaxd.adapters.instance_lock import InstanceLock; "
            "InstanceLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"):
        InstanceLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    lock = InstanceLock(tmp_path)
    assert wait_until(lambda: _try(lock), 5)
    lock.release()


def _try(lock: InstanceLock) -> bool:
    try:
        return lock.acquire()
    except AlreadyRunning:
        time.sleep(0.05)
        return False


def test_a_state_dir_that_cannot_hold_a_lock_is_said_and_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert InstanceLock(blocker / "state").acquire() is False
    assert "cannot create the lock file" in caplog.text
