"""AVTransport actions of the simulated Sonos speaker: sources, queue, play state, position."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from relaxd.sim import sonos_groups as groups
from relaxd.sim.sonos_didl import (
    DIDL_CLOSE,
    SAVED_QUEUE_PREFIX,
    Track,
    didl,
    hms,
    parse_hms,
    title_from_metadata,
    track_item,
)
from relaxd.sim.sonos_soap import UPnPError
from relaxd.sim.sonos_state import PLAY_MODES, SpeakerModel

Args = Mapping[str, str]
Out = dict[str, object]
Handler = Callable[[SpeakerModel, Args], Out]
GROUP_URI_PREFIX = groups.GROUP_URI_PREFIX
DIDL_END = DIDL_CLOSE

# Schemes a Sonos player accepts for SetAVTransportURI/AddURIToQueue; anything else is 714.
_PLAYABLE = (
    "x-sonosapi-stream:",
    "x-sonosapi-radio:",
    "x-rincon-mp3radio:",
    "x-file-cifs:",
    "http:",
    "https:",
    "aac:",
    "hls-radio:",
    "x-sonos-http:",
    "x-sonos-spotify:",
    "x-sonosapi-hls:",
    "x-sonosapi-hls-static:",
    "x-rincon-cpcontainer:",
    SAVED_QUEUE_PREFIX,
)
_STREAMS = ("x-sonosapi-stream:", "x-sonosapi-radio:", "x-rincon-mp3radio:", "aac:", "hls-radio:", "x-sonosapi-hls:")
# containers can only be enqueued, not set as the transport URI
_CONTAINERS = (SAVED_QUEUE_PREFIX, "x-rincon-cpcontainer:")


def int_arg(args: Args, name: str, low: int | None = None, high: int | None = None) -> int:
    try:
        value = int(args[name])
    except (KeyError, ValueError) as exc:
        raise UPnPError(402, "Invalid Args") from exc
    if (low is not None and value < low) or (high is not None and value > high):
        raise UPnPError(601, "Argument Value Out of Range")
    return value


def bool_arg(args: Args, name: str) -> bool:
    value = args.get(name, "").strip().lower()
    if value not in ("0", "1", "true", "false"):
        raise UPnPError(402, "Invalid Args")
    return value in ("1", "true")


# --- AVTransport ------------------------------------------------------------------------------
def set_uri(m: SpeakerModel, args: Args) -> Out:
    uri, metadata = args.get("CurrentURI", ""), args.get("CurrentURIMetaData", "")
    if uri.startswith(GROUP_URI_PREFIX):
        groups.join(m, uri.removeprefix(GROUP_URI_PREFIX))
    elif uri == m.queue_uri():
        m.load(uri, "", None)
    elif uri.startswith(("x-rincon-queue:", "x-sonos-vli:")) or not uri:
        # a cloud queue (Spotify Connect, Alexa) lives in the cloud: no player can start it by URI
        raise UPnPError(402, "Invalid Args")
    elif uri.startswith(("x-rincon-stream:", "x-sonos-htastream:")) and m.uid in uri:
        m.load(uri, metadata, Track(uri, "TV" if "htastream:" in uri else "Line-In"))
    elif uri.startswith(_PLAYABLE) and not uri.startswith(_CONTAINERS):
        known = m.library.track(uri)
        title = title_from_metadata(metadata) or uri
        m.load(uri, metadata, known or Track(uri, title))
    else:
        raise UPnPError(714, "Illegal MIME-Type")
    return {}


def _tracks(m: SpeakerModel, uri: str, metadata: str) -> list[Track]:
    playlist = m.library.playlist_by_uri(uri)
    if playlist is not None:
        return list(playlist.tracks)
    if uri.startswith(_PLAYABLE):
        known = m.library.track(uri)
        return [
            known
            or Track(
                uri,
                title_from_metadata(metadata) or uri.rpartition("/")[2],
                duration_s=0 if uri.startswith(_STREAMS) else 180,
            )
        ]
    raise UPnPError(714, "Illegal MIME-Type")


def enqueue(m: SpeakerModel, args: Args) -> Out:
    uri, metadata = args.get("EnqueuedURI", ""), args.get("EnqueuedURIMetaData", "")
    return _insert(m, int_arg(args, "DesiredFirstTrackNumberEnqueued", 0), _tracks(m, uri, metadata))


def enqueue_many(m: SpeakerModel, args: Args) -> Out:
    """AddMultipleURIsToQueue: up to 16 space-separated URIs (soco's chunks), their DIDL likewise."""
    count = int_arg(args, "NumberOfURIs", 1, 16)
    uris = args.get("EnqueuedURIs", "").split()
    # the DIDL documents are joined by spaces too; each ends with its closing tag
    metadata = [d + DIDL_END for d in args.get("EnqueuedURIsMetaData", "").split(DIDL_END)[:-1]]
    if len(uris) != count:
        raise UPnPError(402, "Invalid Args")
    metadata = (metadata + [""] * count)[:count]
    tracks = [t for uri, meta in zip(uris, metadata, strict=True) for t in _tracks(m, uri, meta.strip())]
    out = _insert(m, int_arg(args, "DesiredFirstTrackNumberEnqueued", 0), tracks)
    return {**out, "NewUpdateID": m.queue_update_id}


def _insert(m: SpeakerModel, desired: int, tracks: list[Track]) -> Out:
    first = desired if 0 < desired <= len(m.queue) else len(m.queue) + 1
    m.queue[first - 1 : first - 1] = tracks
    if m.source_kind() == "queue" and first <= m.track_nr:
        m.track_nr += len(tracks)
    m.queue_update_id += 1
    return {"FirstTrackNumberEnqueued": first, "NumTracksAdded": len(tracks), "NewQueueLength": len(m.queue)}


def remove_track(m: SpeakerModel, args: Args) -> Out:
    prefix, _, number = args.get("ObjectID", "").partition("/")
    if prefix != "Q:0" or not number.isdigit() or not 0 < int(number) <= len(m.queue):
        raise UPnPError(402, "Invalid Args")
    del m.queue[int(number) - 1]
    m.queue_update_id += 1
    return {}


def clear_queue(m: SpeakerModel, args: Args) -> Out:
    m.queue.clear()
    m.queue_update_id += 1
    if m.source_kind() == "queue":
        m.load(m.uri, "", None)
    return {}


def media_info(m: SpeakerModel, args: Args) -> Out:
    leader = m.group_coordinator()
    uri = m.uri if leader is m else f"x-rincon:{leader.uid}"
    tracks = len(m.queue) if m.source_kind() == "queue" else (1 if m.uri else 0)
    return {
        "NrTracks": tracks,
        "MediaDuration": "NOT_IMPLEMENTED",
        "CurrentURI": uri,
        "CurrentURIMetaData": m.uri_metadata if leader is m else "",
        "NextURI": "",
        "NextURIMetaData": "",
        "PlayMedium": "NETWORK" if m.uri else "NONE",
        "RecordMedium": "NOT_IMPLEMENTED",
        "WriteStatus": "NOT_IMPLEMENTED",
    }


def transport_info(m: SpeakerModel, args: Args) -> Out:
    return {"CurrentTransportState": m.transport_state, "CurrentTransportStatus": "OK", "CurrentSpeed": "1"}


def position_info(m: SpeakerModel, args: Args) -> Out:
    track = m.current_track()
    if track is None:
        return {
            "Track": 0,
            "TrackDuration": "0:00:00",
            "TrackMetaData": "",
            "TrackURI": "",
            "RelTime": "0:00:00",
            "AbsTime": "NOT_IMPLEMENTED",
            "RelCount": 2147483647,
            "AbsCount": 2147483647,
        }
    # line-in and TV have no track metadata; soco knows the marker
    inputs = m.source_kind() == "input"
    metadata = "NOT_IMPLEMENTED" if inputs else didl(track_item(track, "-1", "-1"))
    return {
        "Track": m.track_nr,
        "TrackDuration": hms(track.duration_s),
        "TrackMetaData": metadata,
        "TrackURI": track.uri,
        "RelTime": hms(m.position_s()),
        "AbsTime": "NOT_IMPLEMENTED",
        "RelCount": 2147483647,
        "AbsCount": 2147483647,
    }


def transport_settings(m: SpeakerModel, args: Args) -> Out:
    return {"PlayMode": m.play_mode, "RecQualityMode": "NOT_IMPLEMENTED"}


def crossfade(m: SpeakerModel, args: Args) -> Out:
    return {"CrossfadeMode": m.crossfade}


def actions(m: SpeakerModel, args: Args) -> Out:
    kind = m.source_kind()
    names = ["Set", "Stop", "Play"]
    if kind not in ("input", "none"):
        names.append("Pause")
    if kind == "queue":
        names += ["Next", "Previous", "X_DLNA_SeekTime", "X_DLNA_SeekTrackNr"]
    return {"Actions": ", ".join(names)}


def play(m: SpeakerModel, args: Args) -> Out:
    if m.current_track() is None:
        raise UPnPError(701, "Transition not available")
    if m.transport_state != "PLAYING":
        m.set_transport("PLAYING")
    return {}


def pause(m: SpeakerModel, args: Args) -> Out:
    if m.source_kind() == "input" or m.transport_state == "STOPPED":
        raise UPnPError(701, "Transition not available")
    if m.transport_state == "PLAYING":
        m.set_transport("PAUSED_PLAYBACK")
    return {}


def stop(m: SpeakerModel, args: Args) -> Out:
    m.set_transport("STOPPED")
    return {}


def seek(m: SpeakerModel, args: Args) -> Out:
    unit, target = args.get("Unit", ""), args.get("Target", "")
    track = m.current_track()
    if unit == "TRACK_NR":
        if m.source_kind() != "queue":
            raise UPnPError(701, "Transition not available")
        number = int_arg(args, "Target")
        if not 0 < number <= len(m.queue):
            raise UPnPError(711, "Illegal seek target")
        m.track_nr = number
        m.set_position(0.0)
    elif unit == "REL_TIME":
        if track is None or track.duration_s == 0:
            raise UPnPError(701, "Transition not available")
        try:
            position_s = parse_hms(target)
        except ValueError as exc:
            raise UPnPError(711, "Illegal seek target") from exc
        if position_s > track.duration_s:
            raise UPnPError(711, "Illegal seek target")
        m.set_position(float(position_s))
    else:
        raise UPnPError(710, "Seek mode not supported")
    return {}


def skip(step: int) -> Handler:
    def skip(m: SpeakerModel, args: Args) -> Out:
        wanted = m.track_nr + step
        if m.source_kind() != "queue" or not 0 < wanted <= len(m.queue):
            raise UPnPError(701, "Transition not available")
        m.track_nr = wanted
        m.set_position(0.0)
        return {}

    return skip


def set_play_mode(m: SpeakerModel, args: Args) -> Out:
    mode = args.get("NewPlayMode", "").upper()
    if mode not in PLAY_MODES:
        raise UPnPError(712, "Play mode not supported")
    m.play_mode = mode
    return {}


def set_crossfade(m: SpeakerModel, args: Args) -> Out:
    m.crossfade = bool_arg(args, "CrossfadeMode")
    return {}


def standalone(m: SpeakerModel, args: Args) -> Out:
    handed_to = groups.leave(m)
    return {"DelegatedGroupCoordinatorID": handed_to, "NewGroupID": f"{m.uid}:{m.queue_update_id}"}


def delegate(m: SpeakerModel, args: Args) -> Out:
    new = next((x for x in m.household.members if x.uid == args.get("NewCoordinator", "")), None)
    if new is None or new.vanished:
        raise UPnPError(402, "Invalid Args")
    groups.delegate(m, new, bool_arg(args, "RejoinGroup"))
    return {}
