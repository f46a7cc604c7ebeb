"""Shared pytest fixtures: a real Mosquitto broker started per test on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import soco

from relaxd.adapters.blocking import BlockingCalls
from tests.engine_rig import MakeRig, Rig
from tests.mosquitto import Mosquitto

MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Make (unstarted) brokers with custom config; every one is stopped at teardown."""
    brokers: list[Mosquitto] = []

    def make(**kwargs: Any) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"broker{len(brokers)}", **kwargs)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A started broker: anonymous, no persistence, 127.0.0.1 only."""
    return mosquitto_factory().start()


@pytest.fixture(autouse=True)
def fresh_soco() -> Iterator[None]:
    """soco keeps one SoCo per ip:port and caches uid and groups; the OS may reuse a port."""
    yield
    soco.core._ArgsSingleton._instances.pop("SoCo", None)
    soco.core.SoCo.zone_group_states.clear()


@pytest.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    """Engine rigs (tests/engine_rig.py) whose engines run on the test's loop; closed at teardown."""
    rigs: list[Rig] = []

    def make(**kw: Any) -> Rig:
        rig = Rig(**kw).start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.close()


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    return make_rig()


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    """The blocking pool, as the daemon has one; closed at teardown."""
    pool = BlockingCalls(workers=4)
    yield pool
    pool.close()
