"""One room's breath: edges on time from the room's engine, published, and sent to the devices."""

from __future__ import annotations

import json
import logging
from typing import Any

from relaxd.core.breath import BreathPlan, Edge
from relaxd.core.breath_budget import BreathBudget
from relaxd.core.events import iso_utc
from relaxd.core.ports import Clock, EventBus, LightScene
from relaxd.core.room import Room
from relaxd.core.routines import Phase
from relaxd.core.timeline import wall

log = logging.getLogger(__name__)
# An edge woken up later than this share of its own length (and than LATE_S real seconds) is left
# out: the next one is on time.
LATE_SHARE = 0.25
LATE_S = 0.25
# A swell ramps over this share of its edge: a speaker ramp's last step lands at its end, where the
# next edge would cut it off.
SWELL_SHARE = 0.75


class BreathPacer:
    """The breath of the room's current phase. Its next edge is a deadline of the engine's timer
    (seconds_until_due), fired from the engine's handler: nothing here awaits. Every edge is published
    (`<base>/<room>/breath`, QoS 0, not retained); the lights follow the breaths the shared budget
    gives the room, the music swells with every one (never above max_volume)."""

    def __init__(self, room: Room, bus: EventBus, clock: Clock, budget: BreathBudget, topic: str | None) -> None:
        self.room = room
        self.bus = bus
        self.clock = clock
        self.budget = budget
        self.topic = topic
        self.phase: Phase | None = None
        self.plan: BreathPlan | None = None
        self._next = 0  # the index of the next edge
        self._follow_cycle: int | None = None  # the breath the lights follow now
        self._paused_at: float | None = None
        self._lights_cost: list[tuple[str, int, int, float]] | None = None  # known once the lights take part
        self._joined = False  # in the budget (lights that take part, not paused)
        self._lights_never = False  # this phase's breath is too quick for the lights, or they have no cost

    def begin(self, phase: Phase, anchor_s: float) -> None:
        """The phase begins (planned at anchor_s): its breath, if it has one, from its first inhale."""
        self.end()
        if phase.breathing is None:
            return
        self.phase, self.plan = phase, BreathPlan(phase.breathing, anchor_s)
        self._join(first=True)

    def end(self) -> None:
        """No more edges (the phase is over, or the room is being given back)."""
        self._leave()
        self.phase = self.plan = None
        self._next, self._follow_cycle, self._paused_at = 0, None, None
        self._lights_cost, self._lights_never = None, False

    def pause(self, now_s: float) -> None:
        """The breath is held: the lights end the edge under way and stay there; nothing more is sent."""
        if self.plan is not None and self._paused_at is None:
            self._paused_at = now_s
            self._leave()

    def resume(self, now_s: float) -> None:
        """The breath goes on where it was held: every later edge moves by the time held."""
        if self.plan is None or self._paused_at is None:
            return
        self.plan.anchor_s += now_s - self._paused_at
        self._paused_at = None
        self._join()
        cycle = self._follow_cycle
        if cycle is not None and self._joined:
            rest = [e.at_s for e in self.plan.light_edges(cycle, self._next)]
            if rest and not self.budget.admit(self.room.room_id, rest, new_breath=False):
                self._follow_cycle = None

    def due_at(self) -> float | None:
        if self.plan is None or self._paused_at is not None:
            return None
        return self.plan.edge(self._next).at_s

    def fire(self, now_s: float) -> None:
        """Every edge due by now_s, in order; one woken up too late is left out."""
        plan = self.plan
        while plan is not None and self._paused_at is None and plan.edge(self._next).at_s <= now_s:
            edge = plan.edge(self._next)
            self._next += 1
            if edge.index % plan.steps_per_cycle == 0:
                self._decide(edge.cycle)
            if now_s - edge.at_s > min(edge.duration_s * LATE_SHARE, LATE_S * self.clock.speed):
                log.debug(
                    "room %s: breath %s %d left out, %.3f s late",
                    self.room.room_id,
                    edge.step,
                    edge.cycle,
                    now_s - edge.at_s,
                )
                continue
            self._edge(edge)

    # -- internals ----------------------------------------------------------------------------------

    def _join(self, *, first: bool = False) -> None:
        """Into the budget, once the lights take part (they may be away at the phase's start); first:
        at the phase's start, where the first breath may be put off to where the bridge has room."""
        if self.plan is None or self._joined or self._lights_never or not self.room.takes_part("lights"):
            return
        if self._lights_cost is None:
            try:
                self._lights_cost = list(self.room.lights.edge_cost()) if self.room.lights is not None else None
            except Exception:  # an adapter that cannot say: its lights keep the phase's light, never overload
                log.exception("room %s: the lights cannot say what a breath edge costs", self.room.room_id)
            if self._lights_cost is None:
                self._lights_never = True
                return
        if not self.budget.fits_alone(self._lights_cost, [e.at_s for e in self.plan.light_edges(0)]):
            name = self.phase.name if self.phase else "?"
            log.warning(
                "room %s: the breath of phase %s is too quick for the lights' rate limit; they do not follow it",
                self.room.room_id,
                name,
            )
            self._lights_never = True
            return
        cycle_s = self.plan.breathing.cycle_s
        if first:
            times = [e.at_s for e in self.plan.light_edges(0)]
            shift_s = self.budget.free_shift(self.room.room_id, self._lights_cost, times, cycle_s)
            self.plan.anchor_s += shift_s
            if shift_s:
                log.debug(
                    "room %s: the first breath %.2f s later, where the bridge has room", self.room.room_id, shift_s
                )
        self.budget.join(self.room.room_id, self._lights_cost, cycle_s)
        self._joined = True

    def _leave(self) -> None:
        if self._joined:
            self.budget.leave(self.room.room_id)
            self._joined = False

    def _decide(self, cycle: int) -> None:
        assert self.plan is not None
        self._follow_cycle = None
        self._join()
        times = [e.at_s for e in self.plan.light_edges(cycle)]
        if self._joined and self.budget.admit(self.room.room_id, times):
            self._follow_cycle = cycle

    def _edge(self, edge: Edge) -> None:
        assert self.plan is not None and self.phase is not None
        breathing = self.plan.breathing
        lights_sent = edge.moves_lights and self._follow_cycle == edge.cycle and self._send_lights(edge)
        if edge.moves_lights and breathing.volume_swell and self.phase.music is not None:
            self._swell(edge)
        if self.topic is not None:
            payload: dict[str, Any] = {
                "breath": edge.step,
                "duration_s": edge.duration_s,
                "cycle": edge.cycle,
                "at": iso_utc(wall(self.clock, edge.at_s)),
                "lights": lights_sent,
            }
            self.bus.publish(self.topic, json.dumps(payload, separators=(",", ":")), retain=False, qos=0)

    def _send_lights(self, edge: Edge) -> bool:
        assert self.plan is not None and self.phase is not None
        lights = self.room.lights
        if lights is None:
            return False
        colour = self.phase.lights
        scene = LightScene(
            bri_254=self.plan.breathing.bri_254(edge.step),
            ct_mired=colour.scene().ct_mired if colour is not None else None,
            xy=colour.xy if colour is not None else None,
            transition_s=edge.duration_s / self.clock.speed,
        )
        return self.room.breath_edge("lights", lambda: lights.apply(scene), is_scene=True)

    def _swell(self, edge: Edge) -> None:
        assert self.plan is not None and self.phase is not None and self.phase.music is not None
        speaker = self.room.speaker
        if speaker is None:
            return
        base = min(self.phase.music.volume, self.room.max_volume)
        top = min(base + self.plan.breathing.volume_swell, self.room.max_volume)
        if top <= base:
            return
        volume, ramp_s = (top if edge.step == "inhale" else base), edge.duration_s * SWELL_SHARE / self.clock.speed
        self.room.breath_edge("speaker", lambda: speaker.set_volume(volume, ramp_s))
