"""Paced commands stay within the bridge's rate limit while reads keep every connection busy."""

from __future__ import annotations

import threading

from relaxd.adapters.hue import HueBridge
from relaxd.sim.hue_bridge import HueBridgeSim


def test_commands_queued_behind_busy_connections_never_burst_into_a_429() -> None:
    with HueBridgeSim(lights=12, latency_ms=80) as sim:
        bridge = HueBridge(sim.address, sim.username, https=False, timeout_s=10)
        stop = threading.Event()
        errors: list[BaseException] = []

        def reader() -> None:  # other rooms reading their lights, keeping the connections busy
            while not stop.is_set():
                bridge.get_lights()
                stop.wait(0.02)  # a room reads per phase, not in a tight loop

        def writer(first: int) -> None:
            try:
                for i in range(15):
                    bridge.set_light_state(first + i % 6, {"on": True, "bri": 10 + i})
            except BaseException as exc:  # a 429 that survived the retry arrives here
                errors.append(exc)

        readers = [threading.Thread(target=reader) for _ in range(4)]
        writers = [threading.Thread(target=writer, args=(first,)) for first in (1, 7)]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join(timeout=60)
        stop.set()
        for thread in readers:
            thread.join(timeout=10)
        assert errors == []
        assert sim.rate_limited_count == 0
        puts = [e.at_s for e in sim.request_log() if e.method == "PUT"]
        assert len(puts) == 30
        # No sliding second holds more than 10 light commands as the bridge saw them.
        assert max(sum(1 for t in puts if start <= t < start + 1.0) for start in puts) <= 10


def test_a_paced_command_gets_the_next_free_connection_before_waiting_reads() -> None:
    from relaxd.adapters.hue.pacing import ConnectionSlots
    from tests.mosquitto import wait_until

    slots = ConnectionSlots(1)
    slots.acquire(command=False)  # a read in flight
    order: list[str] = []

    def take(name: str, command: bool) -> None:
        slots.acquire(command=command)
        order.append(name)
        slots.release()

    reads = [threading.Thread(target=take, args=(f"read{i}", False)) for i in range(3)]
    for thread in reads:
        thread.start()
    assert wait_until(lambda: len(slots._cond._waiters) == 3, 5)  # type: ignore[attr-defined]
    command = threading.Thread(target=take, args=("command", True))
    command.start()
    assert wait_until(lambda: len(slots._cond._waiters) == 4, 5)  # type: ignore[attr-defined]
    slots.release()
    for thread in [*reads, command]:
        thread.join(timeout=5)
    assert order[0] == "command" and sorted(order[1:]) == ["read0", "read1", "read2"]
