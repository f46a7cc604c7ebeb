"""What one breath edge costs a Hue bridge: charged as a group command, the scarcer of its limits."""

from __future__ import annotations

import math

from relaxd.adapters.hue.bridge import HueBridge
from relaxd.adapters.hue.pacing import Pacing
from relaxd.core.ports import EdgeCost


def edge_cost(bridge: HueBridge, light_count: int) -> list[EdgeCost]:
    """The charge of one apply() of a room with light_count lights on bridge.

    HueLights.apply() sends one group command when a group holds exactly the room's lights (a room
    by group name, or by names that happen to form one) and one light command a light otherwise (a
    light unreachable or changed by hand): which, only the bridge's groups at that moment tell. So an
    edge is charged one group command, and more for a room with more lights than the bridge takes
    light commands in one window: paced that way, either path stays within both of the bridge's
    limits (a group command a window, `light_commands` light commands a window).
    """
    pacing: Pacing = bridge._gate.pacing  # the bridge's own limits, as its gate enforces them
    windows = max(1, math.ceil(light_count / pacing.light_commands))
    return [EdgeCost(f"hue bridge {bridge.host}", 1, pacing.group_commands, pacing.window_s * windows)]
