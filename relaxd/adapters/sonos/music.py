"""Starting a room's music on a Sonos coordinator: a favorite, a URI or a Sonos playlist by title."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from soco.data_structures import DidlContainer

from relaxd.adapters.sonos.calls import SpeakerCalls
from relaxd.core.ports import DeviceError, MusicSource

# play_from_queue: speaker info (once), SetAVTransportURI, Seek, Play; with clear and add before.
QUEUE_PLAY_REQUESTS = 6


@dataclass(frozen=True)
class Play:
    """What plays the room's music: one call in the pool, and the source URI it loads (when known)."""

    what: str
    run: Callable[[], Any]
    requests_n: int
    uri: str | None  # None for the queue, whose URI names the speaker (x-rincon-queue:<uid>#0)


async def prepare_source(
    call: SpeakerCalls, device: Any, source: MusicSource, favorites: Callable[[], Awaitable[list[Any]]]
) -> Play:
    """Look source up (raising DeviceError for an unknown title) and return what plays it."""
    if source.favorite:
        favorite = by_title(await favorites(), source.favorite, "favorite")
        reference = await call("read the favorite", lambda: favorite.reference)
        if isinstance(reference, DidlContainer):
            # a playlist or album favorite plays from the queue, as the Sonos app plays it
            return queue_play(device, reference)
        if not getattr(reference, "resources", None):
            # what the speaker said about the favorite has nothing to play (a foreign or broken answer)
            raise DeviceError("speaker", f"the Sonos favorite {source.favorite!r} has no playable resource")
        uri, meta = reference.resources[0].uri, getattr(favorite, "resource_meta_data", None)
        return Play("play the favorite", lambda: device.play_uri(uri, meta), 2, uri)
    if source.playlist:
        playlists = await call(
            "list the Sonos playlists", lambda: list(device.get_sonos_playlists(complete_result=True)), requests_n=2
        )
        return queue_play(device, by_title(playlists, source.playlist, "playlist"))
    uri = source.uri or ""
    return Play("play the URI", lambda: device.play_uri(uri), 2, uri)


def queue_play(device: Any, item: Any) -> Play:
    def run() -> None:
        device.clear_queue()
        device.add_to_queue(item)
        device.play_from_queue(0)

    return Play("play from the queue", run, QUEUE_PLAY_REQUESTS, None)


def by_title(items: Sequence[Any], title: str, kind: str) -> Any:
    """The item called title (exact, else ignoring case); DeviceError naming what exists."""
    found = [i for i in items if i.title == title] or [i for i in items if str(i.title).casefold() == title.casefold()]
    if not found:
        known = ", ".join(repr(i.title) for i in items) or "none"
        raise DeviceError("speaker", f"no Sonos {kind} called {title!r}; there are: {known}")
    return found[0]
