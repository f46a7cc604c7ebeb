"""The UPnP actions of the simulated Sonos speaker, one function per action name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from relaxd.sim import sonos_transport as transport
from relaxd.sim.sonos_didl import didl, favorite_item, playlist_container, track_item
from relaxd.sim.sonos_soap import UPnPError
from relaxd.sim.sonos_state import RAMP_TYPES, SpeakerModel
from relaxd.sim.sonos_transport import Args, Handler, Out, bool_arg, int_arg

_TRANSPORT_CHANGES = (
    "SetAVTransportURI",
    "AddURIToQueue",
    "RemoveTrackFromQueue",
    "RemoveAllTracksFromQueue",
    "Play",
    "Pause",
    "Stop",
    "Seek",
    "Next",
    "Previous",
    "SetPlayMode",
    "SetCrossfadeMode",
    "AddMultipleURIsToQueue",
    "DelegateGroupCoordinationTo",
)
# What a group member may still do with its own transport: join another group, or leave.
_MEMBER_MAY = ("BecomeCoordinatorOfStandaloneGroup",)


def dispatch(model: SpeakerModel, action: str, args: Args) -> Out:
    """Run one action under the model's lock, the speaker brought up to now first."""
    handler = ACTIONS.get(action)
    if handler is None:
        raise UPnPError(401, "Invalid Action")
    leader = model.group_coordinator()
    joining = action == "SetAVTransportURI" and args.get("CurrentURI", "").startswith(transport.GROUP_URI_PREFIX)
    if leader is not model and action in _TRANSPORT_CHANGES and not joining:
        # a group member's transport belongs to its coordinator
        raise UPnPError(701, "Transition not available")
    target = leader if action in ("GetTransportInfo", "GetPositionInfo") else model
    if joining or action in _MEMBER_MAY or action == "DelegateGroupCoordinationTo":
        # the household's layout changes: one change at a time, whoever is asked
        with model.household.lock:
            model.tick()
            return handler(model, args)
    with target.lock:
        target.tick()
        return handler(target, args)


# --- RenderingControl -------------------------------------------------------------------------
def _get(attr: str, out: str) -> Handler:
    return lambda m, args: {out: getattr(m, attr)}


def _set_volume(m: SpeakerModel, args: Args) -> Out:
    m.set_volume(int_arg(args, "DesiredVolume", 0, 100))
    return {}


def _relative_volume(m: SpeakerModel, args: Args) -> Out:
    m.set_volume(m.volume + int_arg(args, "Adjustment"))
    return {"NewVolume": m.volume}


def _set_mute(m: SpeakerModel, args: Args) -> Out:
    m.mute = bool_arg(args, "DesiredMute")
    return {}


def _set_loudness(m: SpeakerModel, args: Args) -> Out:
    m.loudness = bool_arg(args, "DesiredLoudness")
    return {}


def _set_eq(attr: str, arg: str) -> Handler:
    def set_eq(m: SpeakerModel, args: Args) -> Out:
        setattr(m, attr, int_arg(args, arg, -10, 10))
        return {}

    return set_eq


def _ramp(m: SpeakerModel, args: Args) -> Out:
    ramp_type = args.get("RampType", "")
    if ramp_type not in RAMP_TYPES:
        raise UPnPError(402, "Invalid Args")
    target = int_arg(args, "DesiredVolume", 0, 100)
    reset_after = bool_arg(args, "ResetVolumeAfter")
    if reset_after:
        m.pre_ramp_volume = m.volume
    return {"RampTime": m.start_ramp(ramp_type, target)}


def _restore_pre_ramp(m: SpeakerModel, args: Args) -> Out:
    m.set_volume(m.pre_ramp_volume)
    return {}


# --- ContentDirectory -------------------------------------------------------------------------
def _browse(m: SpeakerModel, args: Args) -> Out:
    object_id, flag = args.get("ObjectID", ""), args.get("BrowseFlag", "")
    start, count = int_arg(args, "StartingIndex", 0), int_arg(args, "RequestedCount", 0)
    if object_id == "Q:0" and flag == "BrowseMetadata":
        container = (
            f'<container id="Q:0" parentID="Q:" restricted="true" '
            f'childCount="{len(m.queue)}"><dc:title>Queue</dc:title>'
            "<upnp:class>object.container.playlistContainer</upnp:class></container>"
        )
        return {"Result": didl(container), "NumberReturned": 1, "TotalMatches": 1, "UpdateID": m.queue_update_id}
    if flag != "BrowseDirectChildren":
        raise UPnPError(402, "Invalid Args")
    playlist = m.library.playlist_by_id(object_id)
    if object_id == "Q:0":
        items = [track_item(t, f"Q:0/{i}", "Q:0") for i, t in enumerate(m.queue, 1)]
    elif object_id == "FV:2":
        items = [favorite_item(f) for f in m.library.favorites]
    elif object_id == "SQ:":
        items = [playlist_container(p) for p in m.library.playlists]
    elif playlist is not None:
        items = [track_item(t, f"{object_id}/{i}", object_id) for i, t in enumerate(playlist.tracks)]
    elif object_id in ("R:0/0", "R:0/1"):
        items = []
    else:
        raise UPnPError(701, "No such object")
    page = items[start : start + count] if count else items[start:]
    return {
        "Result": didl(*page),
        "NumberReturned": len(page),
        "TotalMatches": len(items),
        "UpdateID": m.queue_update_id if object_id == "Q:0" else 1,
    }


# --- DeviceProperties and ZoneGroupTopology ---------------------------------------------------
def _zone_attributes(m: SpeakerModel, args: Args) -> Out:
    return {
        "CurrentZoneName": m.room_name,
        "CurrentIcon": "x-rincon-roomicon:living",
        "CurrentConfiguration": "1",
        "CurrentTargetRoomName": m.room_name,
    }


def _zone_info(m: SpeakerModel, args: Args) -> Out:
    return {
        "SerialNumber": m.mac.replace(":", "-") + ":A",
        "SoftwareVersion": "95.0-77060",
        "DisplaySoftwareVersion": "16.3",
        "HardwareVersion": "1.20.1.6-2.3",
        "IPAddress": "127.0.0.1",
        "MACAddress": m.mac,
        "CopyrightInfo": "© 2025 Sonos, Inc.",
        "ExtraInfo": "",
        "HTAudioIn": "0",
        "Flags": "0",
    }


def _group_attributes(m: SpeakerModel, args: Args) -> Out:
    leader = m.group_coordinator()
    members = [leader] + [x for x in m.household.members if x.coordinator is leader]
    return {
        "CurrentZoneGroupName": leader.room_name,
        "CurrentZoneGroupID": f"{leader.uid}:7",
        "CurrentZonePlayerUUIDsInGroup": ",".join(x.uid for x in members),
        "CurrentMuseHouseholdId": m.household.household_id,
    }


ACTIONS: Mapping[str, Handler] = MappingProxyType(
    {
        "SetAVTransportURI": transport.set_uri,
        "AddURIToQueue": transport.enqueue,
        "AddMultipleURIsToQueue": transport.enqueue_many,
        "BecomeCoordinatorOfStandaloneGroup": transport.standalone,
        "DelegateGroupCoordinationTo": transport.delegate,
        "RemoveTrackFromQueue": transport.remove_track,
        "RemoveAllTracksFromQueue": transport.clear_queue,
        "GetMediaInfo": transport.media_info,
        "GetTransportInfo": transport.transport_info,
        "GetPositionInfo": transport.position_info,
        "GetTransportSettings": transport.transport_settings,
        "GetCrossfadeMode": transport.crossfade,
        "GetCurrentTransportActions": transport.actions,
        "Stop": transport.stop,
        "Play": transport.play,
        "Pause": transport.pause,
        "Seek": transport.seek,
        "Next": transport.skip(1),
        "Previous": transport.skip(-1),
        "SetPlayMode": transport.set_play_mode,
        "SetCrossfadeMode": transport.set_crossfade,
        "GetMute": _get("mute", "CurrentMute"),
        "SetMute": _set_mute,
        "GetVolume": _get("volume", "CurrentVolume"),
        "SetVolume": _set_volume,
        "SetRelativeVolume": _relative_volume,
        "GetBass": _get("bass", "CurrentBass"),
        "SetBass": _set_eq("bass", "DesiredBass"),
        "GetTreble": _get("treble", "CurrentTreble"),
        "SetTreble": _set_eq("treble", "DesiredTreble"),
        "GetLoudness": _get("loudness", "CurrentLoudness"),
        "SetLoudness": _set_loudness,
        "GetSupportsOutputFixed": lambda m, args: {"CurrentSupportsFixed": False},
        "GetOutputFixed": lambda m, args: {"CurrentFixed": False},
        "RampToVolume": _ramp,
        "RestoreVolumePriorToRamp": _restore_pre_ramp,
        "Browse": _browse,
        "GetHouseholdID": lambda m, args: {"CurrentHouseholdID": m.household.household_id},
        "GetZoneAttributes": _zone_attributes,
        "GetZoneInfo": _zone_info,
        "GetLEDState": lambda m, args: {"CurrentLEDState": "On"},
        "GetZoneGroupState": lambda m, args: {"ZoneGroupState": m.zone_group_state_xml()},
        "GetZoneGroupAttributes": _group_attributes,
    }
)
