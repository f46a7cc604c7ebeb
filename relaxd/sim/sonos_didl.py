"""DIDL-Lite of the simulated Sonos speaker and its seeded library: tracks, playlists, favorites."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

DIDL_OPEN = (
    '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" '
    'xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/" '
    'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/">'
)
DIDL_CLOSE = "</DIDL-Lite>"
SAVED_QUEUE_PREFIX = "file:///jffs/settings/savedqueues.rsq#"
TRACK_CLASS = "object.item.audioItem.musicTrack"
BROADCAST_CLASS = "object.item.audioItem.audioBroadcast"
PLAYLIST_CLASS = "object.container.playlistContainer"
# Sonos really spells its favorites' class like this; soco maps it to DidlFavorite.
FAVORITE_CLASS = "object.itemobject.item.sonos-favorite"
TUNEIN_DESC = "SA_RINCON65031_"


@dataclass(frozen=True)
class Track:
    """A playable item: a library track, a stream or whatever a client enqueued."""

    uri: str
    title: str
    artist: str = ""
    album: str = ""
    duration_s: int = 0  # 0: a stream without an end
    upnp_class: str = TRACK_CLASS


@dataclass(frozen=True)
class Playlist:
    """A Sonos playlist (saved queue, `SQ:<n>`)."""

    number: int
    title: str
    tracks: tuple[Track, ...]

    @property
    def uri(self) -> str:
        return f"{SAVED_QUEUE_PREFIX}{self.number}"


@dataclass(frozen=True)
class Favorite:
    """A Sonos favorite (`FV:2/<n>`) pointing at a stream, a track or a playlist."""

    number: int
    title: str
    uri: str
    ref_class: str
    description: str


def hms(seconds: float) -> str:
    """Seconds as Sonos writes times: H:MM:SS."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def parse_hms(text: str) -> int:
    match = re.fullmatch(r"(\d+):([0-5]\d):([0-5]\d)", text.strip())
    if match is None:
        raise ValueError(f"not H:MM:SS: {text!r}")
    hours, minutes, seconds = (int(g) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def protocol_info(uri: str) -> str:
    scheme = uri.partition(":")[0]
    if uri.startswith(SAVED_QUEUE_PREFIX):
        return "file:*:audio/mpegurl:*"
    if scheme == "x-file-cifs":
        return "x-file-cifs:*:audio/flac:*"
    if scheme in ("http", "https"):
        return "http-get:*:audio/mpeg:*"
    return f"{scheme}:*:*:*"


def track_item(track: Track, item_id: str, parent_id: str) -> str:
    """One `<item>` as a queue or playlist Browse returns it."""
    duration = f' duration="{hms(track.duration_s)}"' if track.duration_s else ""
    extra = ""
    if track.artist:
        extra += f"<dc:creator>{escape(track.artist)}</dc:creator>"
    if track.album:
        extra += f"<upnp:album>{escape(track.album)}</upnp:album>"
    desc = (
        f'<desc id="cdudn" nameSpace="urn:schemas-rinconnetworks-com:metadata-1-0/">{TUNEIN_DESC}</desc>'
        if track.upnp_class == BROADCAST_CLASS
        else ""
    )
    return (
        f'<item id="{escape(item_id)}" parentID="{escape(parent_id)}" restricted="true">'
        f'<res protocolInfo="{protocol_info(track.uri)}"{duration}>{escape(track.uri)}</res>'
        f"<dc:title>{escape(track.title)}</dc:title><upnp:class>{track.upnp_class}</upnp:class>"
        f"{extra}{desc}</item>"
    )


def didl(*elements: str) -> str:
    return DIDL_OPEN + "".join(elements) + DIDL_CLOSE


def playlist_container(playlist: Playlist) -> str:
    return (
        f'<container id="SQ:{playlist.number}" parentID="SQ:" restricted="true">'
        f'<res protocolInfo="{protocol_info(playlist.uri)}">{escape(playlist.uri)}</res>'
        f"<dc:title>{escape(playlist.title)}</dc:title>"
        f"<upnp:class>{PLAYLIST_CLASS}</upnp:class></container>"
    )


def favorite_item(favorite: Favorite) -> str:
    """A favorite as FV:2 lists it: r:resMD holds the DIDL of what the favorite plays."""
    if favorite.ref_class == PLAYLIST_CLASS:
        ref = (
            f'<container id="SQ:{favorite.uri.rpartition("#")[2]}" parentID="SQ:" '
            f'restricted="true"><dc:title>{escape(favorite.title)}</dc:title>'
            f"<upnp:class>{PLAYLIST_CLASS}</upnp:class></container>"
        )
    else:
        ref = (
            f'<item id="F00092020fav{favorite.number}" parentID="L" restricted="true">'
            f"<dc:title>{escape(favorite.title)}</dc:title>"
            f"<upnp:class>{favorite.ref_class}</upnp:class>"
            f'<desc id="cdudn" nameSpace="urn:schemas-rinconnetworks-com:metadata-1-0/">'
            f"{TUNEIN_DESC}</desc></item>"
        )
    return (
        f'<item id="FV:2/{favorite.number}" parentID="FV:2" restricted="false">'
        f"<dc:title>{escape(favorite.title)}</dc:title><upnp:class>{FAVORITE_CLASS}</upnp:class>"
        f"<r:ordinal>{favorite.number}</r:ordinal>"
        f'<res protocolInfo="{protocol_info(favorite.uri)}">{escape(favorite.uri)}</res>'
        f"<r:type>instantPlay</r:type><r:description>{escape(favorite.description)}"
        f"</r:description><r:resMD>{escape(didl(ref))}</r:resMD></item>"
    )


def title_from_metadata(metadata: str) -> str:
    """dc:title of a client's DIDL metadata, or '' when there is none or it does not parse."""
    if not metadata.strip():
        return ""
    try:
        root = ET.fromstring(metadata)
    except ET.ParseError:
        return ""
    return root.findtext(".//{http://purl.org/dc/elements/1.1/}title") or ""


def _nas(folder: str, title: str, artist: str, album: str, duration_s: int) -> Track:
    uri = f"x-file-cifs://nas/Music/{folder}/{title.replace(' ', '%20')}.flac"
    return Track(uri, title, artist, album, duration_s)


@dataclass(frozen=True)
class Library:
    """What the simulated household knows: tracks by URI, Sonos playlists and favorites."""

    playlists: tuple[Playlist, ...]
    favorites: tuple[Favorite, ...]
    tracks: tuple[Track, ...]

    def track(self, uri: str) -> Track | None:
        return next((t for t in self.tracks if t.uri == uri), None)

    def playlist_by_uri(self, uri: str) -> Playlist | None:
        return next((p for p in self.playlists if p.uri == uri), None)

    def playlist_by_id(self, object_id: str) -> Playlist | None:
        return next((p for p in self.playlists if f"SQ:{p.number}" == object_id), None)


def seeded_library() -> Library:
    """A few calm favorites and playlists, and the everyday tracks the demo room was playing."""
    calm = (
        _nas("Calm", "Morning Mist", "Aria Lund", "Stillness", 252),
        _nas("Calm", "Slow Tide", "Aria Lund", "Stillness", 301),
        _nas("Calm", "Warm Stones", "Kenji Arai", "Spa Suite", 275),
        _nas("Calm", "Cedar Breath", "Kenji Arai", "Spa Suite", 330),
    )
    deep = (
        _nas("Deep", "Low Clouds", "Mira Solen", "Deep Rest", 412),
        _nas("Deep", "Night Garden", "Mira Solen", "Deep Rest", 388),
        _nas("Deep", "Floating", "Mira Solen", "Deep Rest", 455),
    )
    everyday = (
        _nas("Pop", "Kitchen Disco", "The Saucepans", "Sunday Lunch", 201),
        _nas("Pop", "Bike to Work", "The Saucepans", "Sunday Lunch", 187),
        _nas("Pop", "Rainy Bus", "Lena Park", "Commute", 224),
        _nas("Pop", "Late Train", "Lena Park", "Commute", 243),
    )
    ocean = _nas("Nature", "Ocean Waves", "Field Recordings", "Shorelines", 1800)
    spa_radio = Track("x-sonosapi-stream:s24146?sid=254&flags=8224&sn=0", "Spa Radio", upnp_class=BROADCAST_CLASS)
    playlists = (Playlist(1, "Calm", calm), Playlist(2, "Deep Relaxation", deep))
    favorites = (
        Favorite(1, "Spa Radio", spa_radio.uri, BROADCAST_CLASS, "TuneIn Station"),
        Favorite(2, "Ocean Waves", ocean.uri, TRACK_CLASS, "Track"),
        Favorite(3, "Calm", playlists[0].uri, PLAYLIST_CLASS, "Sonos Playlist"),
    )
    return Library(playlists, favorites, (*calm, *deep, *everyday, ocean, spa_radio))
