"""UPnP/SOAP plumbing of the simulated Sonos speaker: service table, SCPD, envelopes and faults."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from xml.sax.saxutils import escape

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
CONTROL_NS = "urn:schemas-upnp-org:control-1-0"
SERVICE_NS = "urn:schemas-upnp-org:service-1-0"

# (in arguments, out arguments), names and order exactly as a real speaker's SCPD lists them
# (pinned against the captured service description by the tests).
ActionArgs = tuple[tuple[str, ...], tuple[str, ...]]


class UPnPError(Exception):
    """A UPnP error a speaker answers with (HTTP 500, SOAP Fault, UPnPError/errorCode)."""

    def __init__(self, code: int, description: str = "") -> None:
        super().__init__(f"UPnP error {code} {description}".strip())
        self.code = code
        self.description = description


@dataclass(frozen=True)
class ServiceSpec:
    """One UPnP service the simulator answers, with the actions it implements."""

    name: str
    control_url: str
    event_url: str
    actions: Mapping[str, ActionArgs]

    @property
    def service_type(self) -> str:
        return f"urn:schemas-upnp-org:service:{self.name}:1"

    @property
    def service_id(self) -> str:
        return f"urn:upnp-org:serviceId:{self.name}"

    @property
    def scpd_url(self) -> str:
        return f"/xml/{self.name}1.xml"


_I = ("InstanceID",)
_IC = ("InstanceID", "Channel")

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "AVTransport",
        "/MediaRenderer/AVTransport/Control",
        "/MediaRenderer/AVTransport/Event",
        MappingProxyType(
            {
                "SetAVTransportURI": ((*_I, "CurrentURI", "CurrentURIMetaData"), ()),
                "AddURIToQueue": (
                    (*_I, "EnqueuedURI", "EnqueuedURIMetaData", "DesiredFirstTrackNumberEnqueued", "EnqueueAsNext"),
                    ("FirstTrackNumberEnqueued", "NumTracksAdded", "NewQueueLength"),
                ),
                "RemoveTrackFromQueue": ((*_I, "ObjectID", "UpdateID"), ()),
                "RemoveAllTracksFromQueue": (_I, ()),
                "GetMediaInfo": (
                    _I,
                    (
                        "NrTracks",
                        "MediaDuration",
                        "CurrentURI",
                        "CurrentURIMetaData",
                        "NextURI",
                        "NextURIMetaData",
                        "PlayMedium",
                        "RecordMedium",
                        "WriteStatus",
                    ),
                ),
                "GetTransportInfo": (_I, ("CurrentTransportState", "CurrentTransportStatus", "CurrentSpeed")),
                "GetPositionInfo": (
                    _I,
                    (
                        "Track",
                        "TrackDuration",
                        "TrackMetaData",
                        "TrackURI",
                        "RelTime",
                        "AbsTime",
                        "RelCount",
                        "AbsCount",
                    ),
                ),
                "GetTransportSettings": (_I, ("PlayMode", "RecQualityMode")),
                "GetCrossfadeMode": (_I, ("CrossfadeMode",)),
                "GetCurrentTransportActions": (_I, ("Actions",)),
                "Stop": (_I, ()),
                "Play": ((*_I, "Speed"), ()),
                "Pause": (_I, ()),
                "Seek": ((*_I, "Unit", "Target"), ()),
                "Next": (_I, ()),
                "Previous": (_I, ()),
                "SetPlayMode": ((*_I, "NewPlayMode"), ()),
                "SetCrossfadeMode": ((*_I, "CrossfadeMode"), ()),
                "AddMultipleURIsToQueue": (
                    (
                        *_I,
                        "UpdateID",
                        "NumberOfURIs",
                        "EnqueuedURIs",
                        "EnqueuedURIsMetaData",
                        "ContainerURI",
                        "ContainerMetaData",
                        "DesiredFirstTrackNumberEnqueued",
                        "EnqueueAsNext",
                    ),
                    ("FirstTrackNumberEnqueued", "NumTracksAdded", "NewQueueLength", "NewUpdateID"),
                ),
                "BecomeCoordinatorOfStandaloneGroup": (_I, ("DelegatedGroupCoordinatorID", "NewGroupID")),
                "DelegateGroupCoordinationTo": ((*_I, "NewCoordinator", "RejoinGroup"), ()),
            }
        ),
    ),
    ServiceSpec(
        "RenderingControl",
        "/MediaRenderer/RenderingControl/Control",
        "/MediaRenderer/RenderingControl/Event",
        MappingProxyType(
            {
                "GetMute": (_IC, ("CurrentMute",)),
                "SetMute": ((*_IC, "DesiredMute"), ()),
                "GetVolume": (_IC, ("CurrentVolume",)),
                "SetVolume": ((*_IC, "DesiredVolume"), ()),
                "SetRelativeVolume": ((*_IC, "Adjustment"), ("NewVolume",)),
                "GetBass": (_I, ("CurrentBass",)),
                "SetBass": ((*_I, "DesiredBass"), ()),
                "GetTreble": (_I, ("CurrentTreble",)),
                "SetTreble": ((*_I, "DesiredTreble"), ()),
                "GetLoudness": (_IC, ("CurrentLoudness",)),
                "SetLoudness": ((*_IC, "DesiredLoudness"), ()),
                "GetSupportsOutputFixed": (_I, ("CurrentSupportsFixed",)),
                "GetOutputFixed": (_I, ("CurrentFixed",)),
                "RampToVolume": ((*_IC, "RampType", "DesiredVolume", "ResetVolumeAfter", "ProgramURI"), ("RampTime",)),
                "RestoreVolumePriorToRamp": (_IC, ()),
            }
        ),
    ),
    ServiceSpec(
        "ContentDirectory",
        "/MediaServer/ContentDirectory/Control",
        "/MediaServer/ContentDirectory/Event",
        MappingProxyType(
            {
                "Browse": (
                    ("ObjectID", "BrowseFlag", "Filter", "StartingIndex", "RequestedCount", "SortCriteria"),
                    ("Result", "NumberReturned", "TotalMatches", "UpdateID"),
                ),
            }
        ),
    ),
    ServiceSpec(
        "DeviceProperties",
        "/DeviceProperties/Control",
        "/DeviceProperties/Event",
        MappingProxyType(
            {
                "GetHouseholdID": ((), ("CurrentHouseholdID",)),
                "GetZoneAttributes": (
                    (),
                    ("CurrentZoneName", "CurrentIcon", "CurrentConfiguration", "CurrentTargetRoomName"),
                ),
                "GetZoneInfo": (
                    (),
                    (
                        "SerialNumber",
                        "SoftwareVersion",
                        "DisplaySoftwareVersion",
                        "HardwareVersion",
                        "IPAddress",
                        "MACAddress",
                        "CopyrightInfo",
                        "ExtraInfo",
                        "HTAudioIn",
                        "Flags",
                    ),
                ),
                "GetLEDState": ((), ("CurrentLEDState",)),
            }
        ),
    ),
    ServiceSpec(
        "ZoneGroupTopology",
        "/ZoneGroupTopology/Control",
        "/ZoneGroupTopology/Event",
        MappingProxyType(
            {
                "GetZoneGroupState": ((), ("ZoneGroupState",)),
                "GetZoneGroupAttributes": (
                    (),
                    (
                        "CurrentZoneGroupName",
                        "CurrentZoneGroupID",
                        "CurrentZonePlayerUUIDsInGroup",
                        "CurrentMuseHouseholdId",
                    ),
                ),
            }
        ),
    ),
)


def service_by_control_url(path: str) -> ServiceSpec | None:
    return next((s for s in SERVICES if s.control_url == path), None)


def service_by_scpd_url(path: str) -> ServiceSpec | None:
    return next((s for s in SERVICES if s.scpd_url == path), None)


def scpd_xml(spec: ServiceSpec) -> str:
    """The service description soco reads to learn argument names (when called with kwargs)."""
    variables: dict[str, None] = {}
    actions = []
    for name, (ins, outs) in spec.actions.items():
        args = []
        for direction, names in (("in", ins), ("out", outs)):
            for arg in names:
                variables[f"A_ARG_TYPE_{arg}"] = None
                args.append(
                    f"<argument><name>{arg}</name><direction>{direction}</direction>"
                    f"<relatedStateVariable>A_ARG_TYPE_{arg}</relatedStateVariable></argument>"
                )
        actions.append(f"<action><name>{name}</name><argumentList>{''.join(args)}</argumentList></action>")
    state = "".join(
        f'<stateVariable sendEvents="no"><name>{v}</name><dataType>string</dataType></stateVariable>' for v in variables
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><scpd xmlns="{SERVICE_NS}">'
        "<specVersion><major>1</major><minor>0</minor></specVersion>"
        f"<actionList>{''.join(actions)}</actionList>"
        f"<serviceStateTable>{state}</serviceStateTable></scpd>"
    )


def parse_soap_action(header: str) -> tuple[str, str]:
    """'"urn:schemas-upnp-org:service:AVTransport:1#Play"' -> ('AVTransport', 'Play')."""
    value = header.strip().strip('"')
    urn, _, action = value.partition("#")
    parts = urn.split(":")
    if len(parts) < 5 or not action:
        raise UPnPError(401, "Invalid Action")
    return parts[3], action


def parse_arguments(body: bytes, action: str) -> dict[str, str]:
    """The un-namespaced argument elements of the SOAP Body's action element."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise UPnPError(402, "Invalid Args") from exc
    soap_body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise UPnPError(402, "Invalid Args")
    element = soap_body[0]
    if element.tag.rpartition("}")[2] != action:
        raise UPnPError(401, "Invalid Action")
    return {child.tag.rpartition("}")[2]: child.text or "" for child in element}


def _envelope(inner: str) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_ENV_NS}" '
        f's:encodingStyle="{SOAP_ENCODING}"><s:Body>{inner}</s:Body></s:Envelope>'
    )


def response_xml(spec: ServiceSpec, action: str, values: Mapping[str, object]) -> str:
    """A success envelope with every declared out argument, in the declared order."""
    outs = spec.actions[action][1]
    missing = [name for name in outs if name not in values]
    if missing:
        raise RuntimeError(f"{spec.name}.{action} handler left out {missing}")
    args = "".join(f"<{n}>{escape(_text(values[n]))}</{n}>" for n in outs)
    return _envelope(f'<u:{action}Response xmlns:u="{spec.service_type}">{args}</u:{action}Response>')


def fault_xml(error: UPnPError) -> str:
    """A SOAP Fault as Sonos sends it; soco reads errorCode in the control-1-0 namespace."""
    description = f"<errorDescription>{escape(error.description)}</errorDescription>" if error.description else ""
    return _envelope(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        f'<detail><UPnPError xmlns="{CONTROL_NS}"><errorCode>{error.code}</errorCode>'
        f"{description}</UPnPError></detail></s:Fault>"
    )


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def device_description_xml(*, room_name: str, uid: str, mac: str, location_host: str) -> str:
    """/xml/device_description.xml with the fields soco's get_speaker_info() reads."""
    services = "".join(
        f"<service><serviceType>{s.service_type}</serviceType><serviceId>{s.service_id}"
        f"</serviceId><controlURL>{s.control_url}</controlURL><eventSubURL>{s.event_url}"
        f"</eventSubURL><SCPDURL>{s.scpd_url}</SCPDURL></service>"
        for s in SERVICES
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<root xmlns="urn:schemas-upnp-org:device-1-0">'
        "<specVersion><major>1</major><minor>0</minor></specVersion><device>"
        "<deviceType>urn:schemas-upnp-org:device:ZonePlayer:1</deviceType>"
        f"<friendlyName>{escape(location_host)} - Sonos One - {uid}</friendlyName>"
        "<manufacturer>Sonos, Inc.</manufacturer>"
        "<manufacturerURL>http://www.sonos.com</manufacturerURL>"
        "<modelNumber>S18</modelNumber><modelDescription>Sonos One</modelDescription>"
        "<modelName>Sonos One</modelName><softwareVersion>95.0-77060</softwareVersion>"
        "<swGen>2</swGen><hardwareVersion>1.20.1.6-2.3</hardwareVersion>"
        f"<serialNum>{mac.replace(':', '-')}:A</serialNum><MACAddress>{mac}</MACAddress>"
        f"<UDN>uuid:{uid}</UDN><displayVersion>16.3</displayVersion>"
        f"<roomName>{escape(room_name)}</roomName><displayName>One</displayName>"
        "<iconList><icon><id>0</id><mimetype>image/png</mimetype><width>48</width>"
        "<height>48</height><depth>24</depth><url>/img/icon-S18.png</url></icon></iconList>"
        f"<serviceList>{services}</serviceList></device></root>"
    )
