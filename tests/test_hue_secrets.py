"""The Hue adapter keeps the username out of files and logs (HTTPS: test_hue_https.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights, pair
from relaxd.core.ports import DeviceError
from relaxd.sim.hue_bridge import HueBridgeSim
from tests.hue_rig import WARM, every_kind_of_light


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    """Every kind of light in every colormode, on and off, in one Room."""
    with every_kind_of_light() as hub:
        yield hub


@pytest.fixture
def bridge(sim: HueBridgeSim, calls: BlockingCalls) -> HueBridge:
    return HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)


# -- secrets and files ----------------------------------------------------------------------------


async def test_phue_never_touches_home(
    sim: HueBridgeSim, calls: BlockingCalls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    sim.press_link_button()
    username = (await asyncio.to_thread(pair, sim.address, https=False, wait_s=1)).username
    room = HueLights(HueBridge(sim.address, username, calls=calls, https=False), group="Massage Room")
    await room.restore(await room.snapshot())
    assert list(home.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["home"]


async def test_the_username_never_reaches_the_logs(
    sim: HueBridgeSim, bridge: HueBridge, calls: BlockingCalls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.press_link_button()
    paired = (await asyncio.to_thread(pair, sim.address, https=False, wait_s=1)).username
    assert logging.getLogger("phue").getEffectiveLevel() == logging.WARNING
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    await room.apply(WARM)
    await room.restore(snapshot)
    sim.fail_next(error_type=1)
    with pytest.raises(DeviceError) as caught:
        await room.check()
    assert sim.username not in str(caught.value)
    sim.latency_ms = 500  # a timeout's message and log lines too
    with pytest.raises(DeviceError) as caught:
        await HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=0.1).lights()
    assert sim.username not in str(caught.value)
    assert caplog.records, "the adapter and simulator should have logged something at DEBUG"
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    assert sim.username not in logged and paired not in logged
