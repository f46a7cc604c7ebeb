"""HTTPS with a verified identity: pairing pins the bridge's certificate, every connection checks it
before the username is sent, a changed certificate is refused, redirects are never followed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights, pair
from relaxd.adapters.hue.build import build_lights
from relaxd.adapters.hue.identity import Identity, IdentityError, subject_cn
from relaxd.app.cli import main
from relaxd.app.simrun import config_snippet
from relaxd.core.config import Settings
from relaxd.core.ports import DeviceError
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_tls import SimCertificates
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.hue_rig import WARM, assert_restored, three_lights

BRIDGE_ID = "001788FFFEAE1B58"


@pytest.fixture(scope="module")
def ca() -> Iterator[SimCertificates]:
    """One "Signify" CA for the module (made once: openssl is the slow part)."""
    certificates = SimCertificates()
    yield certificates
    certificates.close()


@contextlib.contextmanager
def https_bridge(ca: SimCertificates, **kwargs: Any) -> Iterator[HueBridgeSim]:
    """Three lights in "Massage Room" on a bridge serving HTTPS (plain HTTP: 301, as a Bridge Pro)."""
    with three_lights(https=True, certificates=ca, **kwargs) as sim:
        yield sim


@pytest.fixture
def pro(ca: SimCertificates) -> Iterator[HueBridgeSim]:
    with https_bridge(ca, bridge_id=BRIDGE_ID) as sim:
        yield sim


def pinned(sim: HueBridgeSim, calls: BlockingCalls, https: str | bool = "auto", **identity: Any) -> HueBridge:
    known = Identity(**identity) if identity else Identity(bridge_id=sim.bridge_id, fingerprint=sim.fingerprint)
    return HueBridge(sim.address, sim.username, calls=calls, https=https, timeout_s=2, identity=known)


# -- the simulator's certificates ----------------------------------------------------------------------


def test_the_simulated_certificate_is_a_bridges_cn_is_the_id_and_there_is_no_san(pro: HueBridgeSim) -> None:
    der = ssl.get_server_certificate((pro.host, pro.port))
    decoded = ssl._ssl._test_decode_cert(str(pro.certificates.leaf(BRIDGE_ID)[0]))  # type: ignore[attr-defined]
    assert dict(pair[0] for pair in decoded["subject"])["commonName"] == BRIDGE_ID
    assert "subjectAltName" not in decoded
    assert subject_cn(ssl.PEM_cert_to_DER_cert(der)) == BRIDGE_ID
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=pro.certificates.ca_pem)
    connection = socket.create_connection((pro.host, pro.port))
    with pytest.raises(ssl.SSLCertVerificationError, match=r"IP address mismatch"):
        context.wrap_socket(connection, server_hostname=pro.host)  # what a hostname check says: why we pin
    connection.close()


# -- pairing --------------------------------------------------------------------------------------------


def test_pairing_over_https_records_the_bridge_id_and_the_fingerprint(pro: HueBridgeSim) -> None:
    pro.press_link_button()
    paired = pair(pro.address, wait_s=2, poll_s=0.05)
    assert (paired.https, paired.bridge_id, paired.fingerprint) == (True, BRIDGE_ID, pro.fingerprint)
    assert pro.redirected() == []  # HTTPS first: nothing went over plain HTTP
    posts = [e for e in pro.request_log() if e.method == "POST" and e.path == "/api"]
    assert len(posts) == 1 and pro.link_button_pressed


async def test_a_session_over_https_with_the_pinned_identity(pro: HueBridgeSim, calls: BlockingCalls) -> None:
    pro.press_link_button()
    paired = await asyncio.to_thread(pair, pro.address, wait_s=2, poll_s=0.05)
    bridge = HueBridge(
        pro.address,
        paired.username,
        calls=calls,
        identity=Identity(bridge_id=paired.bridge_id, fingerprint=paired.fingerprint),
    )
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    await room.apply(WARM)
    assert [pro.light_state(i)["bri"] for i in ("1", "2", "3")] == [80, 80, 80]
    report = await room.restore(snapshot)
    assert sorted(report.restored) == ["Colour", "Dim", "White"]
    assert_restored(pro, snapshot)
    assert pro.light_state(3)["on"] is False and pro.redirected() == []


# -- a different certificate ----------------------------------------------------------------------------


async def test_a_changed_certificate_is_refused_before_the_username_is_sent(
    pro: HueBridgeSim, calls: BlockingCalls
) -> None:
    bridge = pinned(pro, calls)
    room = HueLights(bridge, group="Massage Room")
    before = await room.snapshot()
    paired_fingerprint = pro.fingerprint
    new_fingerprint = pro.renew_certificate()
    pro.clear_request_log()
    with pytest.raises(IdentityError) as caught:
        await room.apply(WARM)
    message = caught.value.message
    assert "different certificate" in message and new_fingerprint in message and paired_fingerprint in message
    assert pro.username not in message
    assert pro.request_log() == [] and pro.redirected() == []  # nothing sent, not even over plain HTTP
    assert_restored(pro, before)


async def test_a_pinned_bridge_never_falls_back_to_plain_http(ca: SimCertificates, calls: BlockingCalls) -> None:
    with https_bridge(ca, plain_http="serve") as square:  # plain HTTP would work on this one
        bridge = pinned(square, calls, https="auto")
        await bridge.check()
        square.renew_certificate()
        square.clear_request_log()
        with pytest.raises(IdentityError):
            await bridge.check()
        assert square.request_log() == []


async def test_signed_by_the_ca_with_the_bridge_id_as_cn(
    ca: SimCertificates, pro: HueBridgeSim, calls: BlockingCalls
) -> None:
    by_id = pinned(pro, calls, bridge_id=BRIDGE_ID, ca_pem=ca.ca_pem)
    await by_id.check()
    pro.renew_certificate()  # a new certificate from the same CA, for the same id: still the bridge
    await HueLights(by_id, group="Massage Room").apply(WARM)
    assert pro.light_state(1)["bri"] == 80
    with https_bridge(ca, bridge_id="001788FFFE000BAD") as impostor:  # a real CA's certificate, another id
        impostor.clear_request_log()
        with pytest.raises(IdentityError, match="is for 001788FFFE000BAD, not for bridge 001788FFFEAE1B58"):
            await pinned(impostor, calls, bridge_id=BRIDGE_ID, ca_pem=ca.ca_pem).check()
        assert impostor.request_log() == []
    other_ca = SimCertificates()
    try:
        with https_bridge(other_ca, bridge_id=BRIDGE_ID) as forged:  # the right id, not the CA's
            with pytest.raises(IdentityError, match="not signed by a Hue bridge CA"):
                await pinned(forged, calls, bridge_id=BRIDGE_ID, ca_pem=ca.ca_pem).check()
            with pytest.raises(IdentityError, match="not signed"):  # Signify's own CAs by default
                await pinned(forged, calls, bridge_id=BRIDGE_ID).check()
            assert forged.request_log() == []
    finally:
        other_ca.close()


async def test_without_an_identity_an_https_bridge_is_refused_with_what_to_put_in_the_config(
    pro: HueBridgeSim, calls: BlockingCalls
) -> None:
    bridge = HueBridge(pro.address, pro.username, calls=calls, https="auto", timeout_s=2)
    with pytest.raises(IdentityError) as caught:
        await bridge.lights()
    assert f"bridge_id: {BRIDGE_ID}" in caught.value.message and pro.fingerprint in caught.value.message
    assert pro.request_log() == [] and pro.redirected() == []


async def test_verify_false_works_and_says_so_at_warning(
    pro: HueBridgeSim, calls: BlockingCalls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    bridge = pinned(pro, calls, https=True, verify=False)
    await HueLights(bridge, group="Massage Room").apply(WARM)
    await bridge.check()
    assert pro.light_state(2)["bri"] == 80
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "verify is false" in r.getMessage()]
    assert len(warnings) == 1 and pro.username not in warnings[0].getMessage()


# -- redirects --------------------------------------------------------------------------------------------


async def test_a_redirect_is_never_followed(pro: HueBridgeSim, calls: BlockingCalls) -> None:
    pro.press_link_button()
    with pytest.raises(DeviceError, match="redirect") as caught:
        await asyncio.to_thread(pair, pro.address, https=False, wait_s=1, poll_s=0.05)
    assert caught.value.code == 301 and "https: true" in caught.value.message
    redirected = pro.redirected()
    assert [(e.method, e.path) for e in redirected] == [("POST", "/api")]
    assert '"devicetype"' in redirected[0].body
    assert pro.request_log() == []  # no GET /api (a followed POST), no pairing at all
    plain = HueBridge(pro.address, pro.username, calls=calls, https=False, timeout_s=2)
    with pytest.raises(DeviceError, match="redirect") as caught:
        await HueLights(plain, group="Massage Room").apply(WARM)
    assert pro.username not in caught.value.message  # the Location carries the path: never shown
    assert pro.request_log() == [] and pro.light_state(1)["bri"] == 200


async def test_auto_uses_plain_http_only_for_a_bridge_without_tls(
    calls: BlockingCalls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with three_lights() as old:
        old.press_link_button()
        paired = await asyncio.to_thread(pair, old.address, wait_s=1, poll_s=0.05)
        assert (paired.https, paired.fingerprint, paired.bridge_id) == (False, None, old.bridge_id)
        bridge = HueBridge(old.address, paired.username, calls=calls, https="auto", timeout_s=2)
        await HueLights(bridge, group="Massage Room").apply(WARM)
        assert old.light_state(1)["bri"] == 80 and bridge.transport.scheme == "http"
    assert any("plain HTTP only" in r.getMessage() for r in caplog.records)


# -- the command line and `relaxd sim` ---------------------------------------------------------------------


def test_hue_pair_names_the_bridge_and_prints_its_identity_for_the_config(
    pro: HueBridgeSim, capsys: pytest.CaptureFixture[str]
) -> None:
    pro.press_link_button()
    assert main(["hue", "pair", "--host", pro.address, "--name", "annex", "--wait", "2"]) == 0
    out = capsys.readouterr().out
    assert f"bridge {BRIDGE_ID}" in out and pro.fingerprint in out
    hue = yaml.safe_load(out.split("(it is a secret):", 1)[1])["hue"]
    annex = hue["bridges"]["annex"]
    assert (annex["bridge_id"], annex["fingerprint"], annex["https"]) == (BRIDGE_ID, pro.fingerprint, True)
    settings = Settings.model_validate(
        {"hue": hue, "rooms": {"r": {"lights": {"bridge": "annex", "group": "Massage Room"}}}}
    )
    calls = BlockingCalls(workers=2)
    try:
        room = build_lights(settings, calls)["r"]
        assert room is not None
        asyncio.run(room.apply(WARM))
    finally:
        calls.close()
    assert pro.light_state(1)["bri"] == 80 and pro.redirected() == []


async def test_the_sim_snippet_of_two_https_bridges_pins_both(ca: SimCertificates, calls: BlockingCalls) -> None:
    with https_bridge(ca) as first, https_bridge(ca) as second, SonosSpeakerSim.demo() as speaker:
        snippet = yaml.safe_load(config_snippet(first, speaker, "room", second))
        settings = Settings.model_validate(snippet)
        assert settings.hue is not None
        found = settings.hue.bridge_settings()
        assert [(b.bridge_id, b.fingerprint) for b in found.values()] == [
            (first.bridge_id, first.fingerprint),
            (second.bridge_id, second.fingerprint),
        ]
        room = build_lights(settings, calls)["room"]
        assert room is not None
        await room.apply(WARM)
        assert first.light_state(1)["bri"] == 80 and second.light_state(1)["bri"] == 200
