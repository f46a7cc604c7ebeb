"""The Hue adapter keeps the username out of files and logs, and speaks HTTPS to a bridge that
wants it."""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
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
    username = await asyncio.to_thread(pair, sim.address, https=False, wait_s=1)
    room = HueLights(HueBridge(sim.address, username, calls=calls, https=False), group="Massage Room")
    await room.restore(await room.snapshot())
    assert list(home.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["home"]


async def test_the_username_never_reaches_the_logs(
    sim: HueBridgeSim, bridge: HueBridge, calls: BlockingCalls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.press_link_button()
    paired = await asyncio.to_thread(pair, sim.address, https=False, wait_s=1)
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


# -- HTTPS ----------------------------------------------------------------------------------------


@pytest.fixture
def https_sim(tmp_path: Path) -> Iterator[HueBridgeSim]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=001788fffe000001"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    hub = HueBridgeSim(lights=2, ssl_context=context)
    hub.start()
    yield hub
    hub.stop()


async def test_https_only_bridge_with_https_true_and_auto(https_sim: HueBridgeSim, calls: BlockingCalls) -> None:
    secure = HueBridge(https_sim.address, https_sim.username, calls=calls, https=True, timeout_s=2)
    await HueLights(secure, group="Massage Room").apply(WARM)
    assert https_sim.light_state(1)["bri"] == 80
    auto = HueBridge(https_sim.address, https_sim.username, calls=calls, https="auto", timeout_s=2)
    assert (await HueLights(auto, group="Massage Room").snapshot())["lights"]["1"]["bri"] == 80
    await auto.check()  # HTTPS remembered after the plain request was reset
    with pytest.raises(DeviceError, match="reset"):
        await HueBridge(https_sim.address, https_sim.username, calls=calls, https=False, timeout_s=2).check()
