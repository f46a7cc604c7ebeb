"""The Hue REST API v1 routes of the simulated bridge (state and replies, no HTTP or threads)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from relaxd.sim.hue_model import Response, SimGroup, SimLight, error, validate_group_action

Reply = tuple[int, Any]
LINK_BUTTON_WINDOW_S = 30.0


def _method_error(method: str, address: str) -> Reply:
    return 200, [error(4, address, f"method, {method}, not available for resource, {address}")]


def _missing(address: str) -> Reply:
    return 200, [error(3, address, f"resource, {address}, not available")]


def _bad_body(address: str) -> Reply:
    return 200, [error(5, address, "invalid/missing parameters in body")]


class HueApiState:
    """Everything the bridge stores, and the v1 routes over it. Callers hold the lock."""

    def __init__(self, username: str, bridge_id: str = "001788FFFE000001", modelid: str = "BSB002") -> None:
        self.bridge_id = bridge_id
        self.modelid = modelid
        self.lights: dict[str, SimLight] = {}
        self.groups: dict[str, SimGroup] = {}
        self.group0 = SimGroup("0", "Group 0", [], type="LightGroup")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self.whitelist: dict[str, dict[str, str]] = {
            username: {"name": "relaxd#sim", "create date": now, "last use date": now}
        }
        self.link_pressed_at: float | None = None
        self.bridge_name = "Philips hue"

    # -- config -----------------------------------------------------------------------------

    def public_config(self) -> dict[str, Any]:
        mac = self.bridge_id[:6] + self.bridge_id[10:]  # a bridge id is the MAC with FFFE in the middle
        return {
            "name": self.bridge_name,
            "datastoreversion": "163",
            "swversion": "1967054020",
            "apiversion": "1.67.0",
            "mac": ":".join(mac[i : i + 2] for i in range(0, 12, 2)).lower(),
            "bridgeid": self.bridge_id,
            "factorynew": False,
            "replacesbridgeid": None,
            "modelid": self.modelid,
            "starterkitid": "",
        }

    def full_config(self) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        config = self.public_config()
        config.update(
            zigbeechannel=15,
            dhcp=True,
            ipaddress="127.0.0.1",
            netmask="255.0.0.0",
            gateway="127.0.0.1",
            proxyaddress="none",
            proxyport=0,
            UTC=now,
            localtime=now,
            timezone="Etc/UTC",
            linkbutton=self.link_button_pressed(),
            portalservices=False,
            whitelist={k: dict(v) for k, v in self.whitelist.items()},
        )
        return config

    def link_button_pressed(self) -> bool:
        pressed = self.link_pressed_at
        return pressed is not None and time.monotonic() - pressed <= LINK_BUTTON_WINDOW_S

    def pair(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("devicetype"), str):
            return _bad_body("/")
        devicetype = body["devicetype"]
        if not 0 < len(devicetype) <= 40:
            return 200, [error(7, "/devicetype", f"invalid value, {devicetype}, for parameter, devicetype")]
        if not self.link_button_pressed():
            return 200, [error(101, "", "link button not pressed")]
        username = secrets.token_hex(20)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self.whitelist[username] = {"name": devicetype, "create date": now, "last use date": now}
        success: dict[str, str] = {"username": username}
        if body.get("generateclientkey") is True:
            success["clientkey"] = secrets.token_hex(16).upper()
        return 200, [{"success": success}]

    def put_config(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not body:
            return _bad_body("/config")
        results: list[dict[str, Any]] = []
        for key, value in body.items():
            address = f"/config/{key}"
            if key == "linkbutton" and value is True:
                self.link_pressed_at = time.monotonic()
            elif key == "name" and isinstance(value, str) and 0 < len(value) <= 32:
                self.bridge_name = value
            elif key in ("linkbutton", "name"):
                results.append(error(7, address, f"invalid value, {value}, for parameter, {key}"))
                continue
            else:
                results.append(error(6, address, f"parameter, {key}, not available"))
                continue
            results.append({"success": {address: value}})
        return 200, results

    # -- routes -----------------------------------------------------------------------------

    def full_state(self) -> dict[str, Any]:
        return {
            "lights": {i: light.to_json() for i, light in self.lights.items()},
            "groups": {i: g.to_json(self.lights) for i, g in self.groups.items()},
            "config": self.full_config(),
            "schedules": {},
            "scenes": {},
            "rules": {},
            "sensors": self.sensors(),
            "resourcelinks": {},
        }

    def sensors(self) -> dict[str, Any]:
        return {
            "1": {
                "state": {"daylight": None, "lastupdated": "none"},
                "config": {"on": True, "configured": False, "sunriseoffset": 30, "sunsetoffset": -30},
                "name": "Daylight",
                "type": "Daylight",
                "modelid": "PHDL00",
                "manufacturername": "Signify Netherlands B.V.",
                "swversion": "1.0",
            }
        }

    def route(self, method: str, user: str, rest: list[str], body: Any) -> Reply:
        """A request to /api/<user>/<rest...> with its parsed JSON body (None when absent)."""
        address = "/" + "/".join(rest)
        if rest == ["config"] and user not in self.whitelist:
            # The bridge answers an unknown user's config read with its public part, and the
            # simulated link button is reachable without pairing (it stands for the real button).
            if method == "GET":
                return 200, self.public_config()
            if method == "PUT" and isinstance(body, dict) and body.get("linkbutton") is True:
                self.link_pressed_at = time.monotonic()
                return 200, [{"success": {"/config/linkbutton": True}}]
        if user not in self.whitelist:
            return 200, [error(1, address, "unauthorized user")]
        if method in ("PUT", "POST") and not isinstance(body, dict):
            return _bad_body(address)
        if not rest:
            return (200, self.full_state()) if method == "GET" else _method_error(method, address)
        top = rest[0]
        if top == "config" and len(rest) == 1:
            if method == "GET":
                return 200, self.full_config()
            return self.put_config(body) if method == "PUT" else _method_error(method, address)
        if top == "lights":
            return self._lights_route(method, rest, body, address)
        if top == "groups":
            return self._groups_route(method, rest, body, address)
        if top == "sensors" and len(rest) <= 2:
            sensors = self.sensors()
            if method != "GET":
                return _method_error(method, address)
            if len(rest) == 1:
                return 200, sensors
            return (200, sensors[rest[1]]) if rest[1] in sensors else _missing(address)
        if top in ("scenes", "schedules", "rules", "resourcelinks") and len(rest) == 1:
            return (200, {}) if method == "GET" else _method_error(method, address)
        return _missing(address)

    def _lights_route(self, method: str, rest: list[str], body: Any, address: str) -> Reply:
        if len(rest) == 1:
            if method == "GET":
                return 200, {i: light.to_json() for i, light in self.lights.items()}
            return _method_error(method, address)
        light = self.lights.get(rest[1])
        if light is None or len(rest) > 3 or (len(rest) == 3 and rest[2] != "state"):
            return _missing(address)
        if len(rest) == 3:
            return (200, light.command(body, address)) if method == "PUT" else _method_error(method, address)
        if method == "GET":
            return 200, light.to_json()
        if method != "PUT":
            return _method_error(method, address)
        name = body.get("name")
        if set(body) != {"name"} or not isinstance(name, str) or not 0 < len(name) <= 32:
            return 200, [error(7, f"{address}/name", f"invalid value, {name}, for parameter, name")]
        light.name = name
        return 200, [{"success": {f"{address}/name": name}}]

    def group(self, group_id: str) -> SimGroup | None:
        if group_id == "0":
            self.group0.light_ids = list(self.lights)
            return self.group0
        return self.groups.get(group_id)

    def _groups_route(self, method: str, rest: list[str], body: Any, address: str) -> Reply:
        if len(rest) == 1:
            if method == "GET":
                return 200, {i: g.to_json(self.lights) for i, g in self.groups.items()}
            return _method_error(method, address)
        group = self.group(rest[1])
        if group is None or len(rest) > 3 or (len(rest) == 3 and rest[2] != "action"):
            return _missing(address)
        if len(rest) == 2:
            if method == "GET":
                return 200, group.to_json(self.lights)
            return self.put_group(group, body, address) if method == "PUT" else _method_error(method, address)
        if method != "PUT":
            return _method_error(method, address)
        results, ok = validate_group_action(body, address)
        for light_id in group.light_ids:
            if light_id in self.lights:
                self.lights[light_id].group_apply(ok)
        group.record_action(ok)
        return 200, results

    # -- group attributes -------------------------------------------------------------------------

    def put_group(self, group: SimGroup, body: dict[str, Any], address: str) -> Reply:
        """PUT /groups/<id>: its name, lights and (Room, Zone) class; an invalid value changes nothing."""
        if group.group_id == "0":
            return _method_error("PUT", address)
        if not body:
            return _bad_body(address)
        results: Response = []
        for key, value in body.items():
            field = f"{address}/{key}"
            if key == "lights":
                not_a_list = f"invalid value, {value}, for parameter, lights"
                refusal = self.members_refusal(group, value) if isinstance(value, list) else not_a_list
                if refusal is not None:
                    results.append(error(7, field, refusal))
                    continue
            elif key not in ("name", "class") or (key == "class" and group.type == "LightGroup"):
                results.append(error(6, field, f"parameter, {key}, not available"))
                continue
            elif not (isinstance(value, str) and 0 < len(value) <= 32):
                results.append(error(7, field, f"invalid value, {value}, for parameter, {key}"))
                continue
            results.append({"success": {field: value}})
        if any("error" in r for r in results):
            return 200, [r for r in results if "error" in r]
        for key, value in body.items():
            if key == "lights":
                self.set_members(group, value)
            elif key == "name":
                group.name = value
            else:
                group.room_class = value
        return 200, results

    def members_refusal(self, group: SimGroup, light_ids: list[Any]) -> str | None:
        """Why the bridge would refuse light_ids as the group's lights, None if it would not."""
        if group.group_id == "0":
            return "group 0 (all the lights) cannot be changed"
        for light_id in light_ids:
            if not isinstance(light_id, str) or light_id not in self.lights or light_ids.count(light_id) > 1:
                return f"invalid value, {light_id}, for parameter, lights"
        if not light_ids and group.type == "LightGroup":
            return "invalid value, [], for parameter, lights"
        return None

    def set_members(self, group: SimGroup, light_ids: list[str]) -> None:
        """Already checked light_ids become the group's lights; a light is in one Room at most."""
        if group.type == "Room":
            for other in self.groups.values():
                if other is not group and other.type == "Room":
                    other.light_ids = [i for i in other.light_ids if i not in light_ids]
        group.light_ids = list(light_ids)
