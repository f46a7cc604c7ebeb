"""The simulated Sonos speaker answers soco 0.32 as a real speaker does (shared/reference/sonos-*):
the services' contract, UPnP faults, groups, lifecycle and latency."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import soco
import soco.core
from soco.exceptions import SoCoSlaveException, SoCoUPnPException
from soco.snapshot import Snapshot

from relaxd.sim.sonos_soap import SERVICES
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sonos_rig import SPA_RADIO, FakeClock, device

# A copy of shared/reference/sonos-upnp-services.json (MIT, see the LICENSE file beside it).
REFERENCE = Path(__file__).resolve().parent / "data"


@pytest.fixture
def sim() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as speaker:
        yield speaker


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed(clock: FakeClock) -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim(clock=clock) as speaker:
        yield speaker


def reference_services() -> dict[str, Any]:
    data = json.loads((REFERENCE / "sonos-upnp-services.json").read_text())
    return {service["name"]: service for service in data["services"]}


def soap(
    sim: SonosSpeakerSim, path: str, action: str, args: str = "", service: str = "AVTransport"
) -> requests.Response:
    body = (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<s:Body><u:{action} xmlns:u="urn:schemas-upnp-org:service:{service}:1">{args}'
        f"</u:{action}></s:Body></s:Envelope>"
    )
    headers = {
        "SOAPACTION": f'"urn:schemas-upnp-org:service:{service}:1#{action}"',
        "Content-Type": 'text/xml; charset="utf-8"',
    }
    return requests.post(f"http://{sim.address}{path}", data=body, headers=headers, timeout=5)


def upnp_code(error: pytest.ExceptionInfo[SoCoUPnPException]) -> str:
    return str(error.value.error_code)


# --- the contract: names from a real speaker's service description ---------------------------


def test_every_action_has_the_real_speakers_urls_and_argument_names() -> None:
    reference = reference_services()
    for spec in SERVICES:
        real = reference[spec.name]
        assert (spec.service_type, spec.control_url, spec.event_url, spec.scpd_url) == (
            real["serviceType"],
            real["controlURL"],
            real["eventSubURL"],
            real["discoveryUri"],
        )
        actions = {a["name"]: a for a in real["actions"]}
        for name, (ins, outs) in spec.actions.items():
            assert ins == tuple(a["name"] for a in actions[name].get("inputs", [])), name
            assert outs == tuple(a["name"] for a in actions[name].get("outputs", [])), name


def test_soco_reads_the_served_service_descriptions(sim: SonosSpeakerSim) -> None:
    player = device(sim)
    for spec in SERVICES:
        service = {
            "AVTransport": player.avTransport,
            "RenderingControl": player.renderingControl,
            "ContentDirectory": player.contentDirectory,
            "DeviceProperties": player.deviceProperties,
            "ZoneGroupTopology": player.zoneGroupTopology,
        }[spec.name]
        parsed = {a.name: ([x.name for x in a.in_args], [x.name for x in a.out_args]) for a in service.iter_actions()}
        assert parsed == {k: (list(i), list(o)) for k, (i, o) in spec.actions.items()}
    # calls without explicit args go through those descriptions (soco's compose_args)
    assert player.deviceProperties.GetHouseholdID()["CurrentHouseholdID"] == sim.household.household_id


def test_device_description_and_zone_attributes(sim: SonosSpeakerSim) -> None:
    player = device(sim)
    info = player.get_speaker_info(refresh=True)
    assert info["zone_name"] == "Massage Room"
    assert info["model_name"] == "Sonos One" and info["model_number"] == "S18"
    assert info["serial_number"].endswith(":A") and info["mac_address"].count("-") == 5
    assert player.uid == sim.uid and player.player_name == "Massage Room"
    assert player.is_coordinator
    attributes = player.deviceProperties.GetZoneAttributes()
    assert attributes["CurrentZoneName"] == "Massage Room"


# --- faults -----------------------------------------------------------------------------------


def test_fault_shape_unknown_action_is_401_in_the_control_namespace(sim: SonosSpeakerSim) -> None:
    response = soap(sim, "/MediaRenderer/AVTransport/Control", "Dance", "<InstanceID>0</InstanceID>")
    assert response.status_code == 500
    root = ET.fromstring(response.content)
    fault = root.find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body/{http://schemas.xmlsoap.org/soap/envelope/}Fault"
    )
    assert fault is not None and fault.findtext("faultstring") == "UPnPError"
    assert fault.findtext(".//{urn:schemas-upnp-org:control-1-0}errorCode") == "401"
    # an action sent to another service's control URL is unknown there too
    wrong = soap(sim, "/MediaRenderer/RenderingControl/Control", "Play", "<InstanceID>0</InstanceID><Speed>1</Speed>")
    assert wrong.status_code == 500 and b"<errorCode>401</errorCode>" in wrong.content


def test_missing_argument_is_402(sim: SonosSpeakerSim) -> None:
    response = soap(
        sim,
        "/MediaRenderer/RenderingControl/Control",
        "SetVolume",
        "<InstanceID>0</InstanceID><Channel>Master</Channel>",
        service="RenderingControl",
    )
    assert response.status_code == 500 and b"<errorCode>402</errorCode>" in response.content
    assert sim.state().volume == 25


def test_play_with_nothing_loaded_is_701(timed: SonosSpeakerSim) -> None:
    with pytest.raises(SoCoUPnPException) as error:
        device(timed).play()
    assert upnp_code(error) == "701"
    assert timed.state().transport_state == "STOPPED"


def test_unsupported_uri_is_714_and_changes_nothing(sim: SonosSpeakerSim) -> None:
    with pytest.raises(SoCoUPnPException) as error:
        device(sim).play_uri("gopher://old.example/music")
    assert upnp_code(error) == "714"
    assert sim.state().uri == sim.queue_uri() and sim.state().transport_state == "PLAYING"


def test_restoring_a_spotify_connect_stream_is_402(sim: SonosSpeakerSim) -> None:
    sim.start_cloud_queue("spotify")
    player = device(sim)
    snap = Snapshot(player)
    snap.snapshot()
    assert player.get_current_media_info()["uri"].startswith("x-sonos-vli:")
    player.play_uri(SPA_RADIO)
    with pytest.raises(SoCoUPnPException) as error:
        snap.restore()
    assert upnp_code(error) == "402"


def test_seek_on_a_radio_stream_is_701_and_line_in_cannot_pause(sim: SonosSpeakerSim) -> None:
    player = device(sim)
    player.play_uri(SPA_RADIO)
    with pytest.raises(SoCoUPnPException) as error:
        player.seek("0:00:10")
    assert upnp_code(error) == "701"
    player.switch_to_line_in()
    player.play()
    with pytest.raises(SoCoUPnPException) as error:
        player.pause()
    assert upnp_code(error) == "701"
    assert player.get_current_track_info()["metadata"] == "NOT_IMPLEMENTED"


def test_injected_fault_answers_once(sim: SonosSpeakerSim) -> None:
    sim.fail_next("GetVolume", 501)
    with pytest.raises(SoCoUPnPException) as error:
        device(sim).volume  # noqa: B018 - the property read is the request
    assert upnp_code(error) == "501"
    assert device(sim).volume == 25


# --- groups, lifecycle, latency ---------------------------------------------------------------


def test_two_speakers_grouped_under_a_coordinator() -> None:
    with SonosSpeakerSim(room_name="Lounge") as lead, SonosSpeakerSim() as member:
        SonosSpeakerSim.group(lead, member)
        player = device(member)
        assert not player.is_coordinator
        assert player.group.coordinator.port == lead.port
        assert player.group.coordinator.player_name == "Lounge"
        assert device(lead).is_coordinator
        with pytest.raises(SoCoSlaveException):
            player.play()
        assert player.get_current_media_info()["uri"] == f"x-rincon:{lead.uid}"
        raw = soap(member, "/MediaRenderer/AVTransport/Control", "Play", "<InstanceID>0</InstanceID><Speed>1</Speed>")
        assert raw.status_code == 500 and b"<errorCode>701</errorCode>" in raw.content
        member.unjoin()
        soco.core.SoCo.zone_group_states.clear()  # soco caches the group state for 5 s
        assert device(member).is_coordinator


def test_join_puts_a_speaker_in_the_coordinator_s_household() -> None:
    with SonosSpeakerSim() as lead, SonosSpeakerSim() as member:
        member.join(lead)
        assert device(member).household_id == device(lead).household_id
        assert {z.port for z in device(member).group.members} == {lead.port, member.port}


def test_stop_and_start_keep_the_port_and_the_state(sim: SonosSpeakerSim) -> None:
    device(sim).volume = 12
    port = sim.port
    sim.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{sim.address}/xml/device_description.xml", timeout=2)
    sim.start()
    assert sim.port == port
    assert device(sim).volume == 12


def test_latency_delays_answers_and_the_log_records_them() -> None:
    with SonosSpeakerSim(latency_ms=150) as slow:
        began = time.monotonic()
        device(slow).mute = True
        assert time.monotonic() - began >= 0.15
        (call,) = slow.requests()
        assert (call.service, call.action, call.args["DesiredMute"], call.error_code) == (
            "RenderingControl",
            "SetMute",
            "1",
            None,
        )


def test_a_hand_on_the_volume_ends_a_ramp(timed: SonosSpeakerSim, clock: FakeClock) -> None:
    device(timed).ramp_to_volume(50)
    clock.now_s += 4
    timed.hand_set_volume(9)
    clock.now_s += 60
    assert timed.state().volume == 9 and not timed.state().ramping


def test_demo_speaker_plays_its_queue_at_a_moderate_volume() -> None:
    state = SonosSpeakerSim.demo().state()
    assert state.transport_state == "PLAYING" and state.volume == 25
    assert len(state.queue) == 4 and state.track == 2
