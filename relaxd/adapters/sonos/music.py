"""Starting a room's music on a Sonos coordinator: a favorite, a URI or a Sonos playlist by title."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from soco.data_structures import DidlContainer

from relaxd.adapters.sonos.calls import DeadlineCaller as Call
from relaxd.core.ports import DeviceError, MusicSource


def prepare_source(
    call: Call, device: Any, source: MusicSource, favorites_of: Callable[[Any], list[Any]]
) -> Callable[[], None]:
    """Look source up (raising DeviceError for an unknown title) and return what plays it."""
    if source.favorite:
        favorites = favorites_of(device)
        favorite = by_title(favorites, source.favorite, "favorite")
        reference = call("read the favorite", lambda: favorite.reference)
        if isinstance(reference, DidlContainer):
            # a playlist or album favorite plays from the queue, as the Sonos app plays it
            return lambda: play_from_queue(call, device, reference)
        if not getattr(reference, "resources", None):
            # what the speaker said about the favorite has nothing to play (a foreign or broken answer)
            raise DeviceError("speaker", f"the Sonos favorite {source.favorite!r} has no playable resource")
        uri, meta = reference.resources[0].uri, getattr(favorite, "resource_meta_data", None)
        return lambda: call("play the favorite", lambda: device.play_uri(uri, meta), requests_n=2)
    if source.playlist:
        playlists = call(
            "list the Sonos playlists", lambda: list(device.get_sonos_playlists(complete_result=True)), requests_n=2
        )
        playlist = by_title(playlists, source.playlist, "playlist")
        return lambda: play_from_queue(call, device, playlist)
    uri = source.uri or ""
    return lambda: call("play the URI", lambda: device.play_uri(uri), requests_n=2)


def play_from_queue(call: Call, device: Any, item: Any) -> None:
    call("clear the queue", device.clear_queue)
    call("add to the queue", lambda: device.add_to_queue(item))
    call("play from the queue", lambda: device.play_from_queue(0), requests_n=4)


def by_title(items: Sequence[Any], title: str, kind: str) -> Any:
    """The item called title (exact, else ignoring case); DeviceError naming what exists."""
    found = [i for i in items if i.title == title] or [i for i in items if str(i.title).casefold() == title.casefold()]
    if not found:
        known = ", ".join(repr(i.title) for i in items) or "none"
        raise DeviceError("speaker", f"no Sonos {kind} called {title!r}; there are: {known}")
    return found[0]
