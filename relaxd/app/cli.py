"""The `relaxd` command line: run, demo, check-config, the room commands, status, schedule, hue pair, routines, sim."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relaxd import __version__
from relaxd.core.config import Settings, config_path
from relaxd.core.configfile import ConfigError, all_routines, load_settings, resolved_yaml
from relaxd.core.routines import builtin_routines, describe

EX_OK, EX_FAILURE, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
log = logging.getLogger("relaxd")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # phue logs the bridge username at INFO: never let that through.
    logging.getLogger("phue").setLevel(logging.WARNING)


def _load_path(path: Path) -> Settings:
    # APScheduler checks cron lines; the core config loader must not import it, so it is passed in.
    from relaxd.adapters.fire_times import check_cron

    return load_settings(path, check_cron=check_cron)


def _load(args: argparse.Namespace) -> Settings:
    return _load_path(config_path(getattr(args, "config", None)))


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _load(args)
    print(f"# {config_path(args.config)}: OK", file=sys.stderr)
    print(resolved_yaml(settings), end="")
    return EX_OK


def cmd_routines(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    routines = builtin_routines()
    if args.config or path.exists():
        routines = all_routines(_load_path(path))
    print(describe(routines), end="")
    return EX_OK


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args)
    setup_logging(settings.log_level)
    from relaxd.app.daemon import run_daemon

    return run_daemon(settings)


def cmd_hue_pair(args: argparse.Namespace) -> int:
    from relaxd.adapters.hue import pair
    from relaxd.core.ports import DeviceError

    https: str | bool = "auto" if args.https == "auto" else args.https == "true"
    print(f"Press the link button on the Hue bridge at {args.host} now (waiting {args.wait:g} s)...")

    def tick(left_s: float) -> None:
        if sys.stdout.isatty():
            print(f"\r  {left_s:4.0f} s left ", end="", flush=True)

    try:
        paired = pair(args.host, https=https, wait_s=args.wait, on_tick=tick)
    except DeviceError as exc:
        print(f"\nrelaxd: pairing failed: {exc.message}", file=sys.stderr)
        return EX_FAILURE
    lines = [f"host: {args.host}", f'username: "{paired.username}"', f"https: {'true' if paired.https else 'false'}"]
    if paired.bridge_id is not None:
        lines.append(f'bridge_id: "{paired.bridge_id}"')
    if paired.fingerprint is not None:
        lines.append(f'fingerprint: "{paired.fingerprint}"')
    if paired.https:
        print(f"\nPaired over HTTPS with bridge {paired.bridge_id}; its certificate (SHA-256 {paired.fingerprint})")
        print("is checked on every connection. Put this in your config (it is a secret):")
    else:
        print("\nPaired over plain HTTP: this bridge has no HTTPS, so there is no certificate to pin.")
        print("Put this in your config (it is a secret):")
    indent = "  " if args.name is None else "      "
    head = "hue:\n" if args.name is None else f"hue:\n  bridges:\n    {args.name}:\n"
    print(head + "".join(f"{indent}{line}\n" for line in lines), end="")
    return EX_OK


def _bridge_name(text: str) -> str:
    from relaxd.core.hue_config import BRIDGE_NAME_RE

    if not BRIDGE_NAME_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is no bridge name (lowercase letters, digits and _, up to 32)")
    return text


def cmd_remote(args: argparse.Namespace) -> int:
    from relaxd.app.remote import run_remote

    return run_remote(_load(args), args)


def cmd_sim(args: argparse.Namespace) -> int:
    from relaxd.app.simrun import run_sim

    return run_sim(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from relaxd.app.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaxd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"relaxd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", metavar="FILE", help="config file (default: $RELAXD_CONFIG, then /etc/relaxd/relaxd.yaml)"
        )
        return p

    with_config(sub.add_parser("run", help="run the daemon in the foreground")).set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="a whole session on simulated devices, then the room restored")
    demo.add_argument("--speed", type=float, default=60.0, help="how much faster than real time (default 60)")
    demo.add_argument("--routine", default="classic", help="routine to run (default classic)")
    demo.add_argument("--broker", metavar="HOST:PORT", help="use this MQTT broker instead of none")
    demo.set_defaults(func=cmd_demo)
    with_config(sub.add_parser("check-config", help="validate the config and print it resolved")).set_defaults(
        func=cmd_check_config
    )
    _room_parsers(sub, with_config)
    _schedule_parser(sub, with_config)
    hue = sub.add_parser("hue", help="Hue bridge helpers")
    hue_sub = hue.add_subparsers(dest="hue_command", required=True, metavar="COMMAND")
    pair = hue_sub.add_parser("pair", help="pair with a bridge (press its link button)")
    pair.add_argument("--host", required=True, help="bridge address, host or host:port")
    pair.add_argument(
        "--https",
        choices=("auto", "true", "false"),
        default="auto",
        help="auto (default): HTTPS, plain HTTP only for a bridge without it; true: HTTPS only; false: plain HTTP",
    )
    pair.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the button")
    pair.add_argument(
        "--name", type=_bridge_name, help="print the config as this bridge of hue.bridges (several bridges)"
    )
    pair.set_defaults(func=cmd_hue_pair)
    with_config(sub.add_parser("routines", help="list routines with phases and durations")).set_defaults(
        func=cmd_routines
    )
    sim = sub.add_parser("sim", help="a simulated Hue bridge and Sonos speaker on 127.0.0.1")
    sim.add_argument("--hue-port", type=int, default=8080, help="Hue bridge port (default 8080, 0: any free one)")
    sim.add_argument("--sonos-port", type=int, default=1400, help="Sonos speaker port (default 1400, 0: any free one)")
    sim.add_argument("--lights", type=int, default=3, help="how many lights the bridge has (default 3)")
    sim.add_argument("--latency-ms", type=float, default=0.0, help="delay before every request is carried out")
    sim.add_argument(
        "--hue-https",
        action="store_true",
        help="the bridges serve HTTPS like a Bridge Pro (own CA, CN = bridge id; plain HTTP: 301)",
    )
    sim.add_argument(
        "--hue-bridges", type=int, default=1, help="how many bridges (default 1; more: hue.bridges in the snippet)"
    )
    sim.add_argument(
        "--control-port", type=int, default=8099, help="fault control API port (default 8099, 0: any free one)"
    )
    sim.set_defaults(func=cmd_sim)
    return parser


# name -> (help, description): what the command asks the daemon, and the event that answers it.
ROOM_COMMANDS = {
    "start": ("start a session in ROOM", "Start a session; prints the routine and when it ends."),
    "stop": ("stop the session in ROOM", "Stop the session; the room is restored as it was before."),
    "pause": ("pause the session in ROOM", "Pause the session: the timeline holds until `relaxd resume`."),
    "resume": ("resume the paused session in ROOM", "Resume a paused session where it was."),
    "skip": ("go on to the next phase in ROOM", "End the current phase now (after the last one: finish and restore)."),
    "extend": ("make the session in ROOM longer", "Make the session longer by --minutes (running or paused)."),
}
ANSWER_NOTE = (
    "Waits for the daemon's answer (the event with this command's transaction) and prints one line; "
    "exit 0 when done, 1 when the daemon rejects it, is offline, or does not answer within --timeout."
)


def _room_id(text: str) -> str:
    from relaxd.core.config import ROOM_ID_RE

    if not ROOM_ID_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is no room id (lowercase letters, digits and _, up to 32)")
    return text


def _extend_minutes(text: str) -> float:
    from pydantic import ValidationError

    from relaxd.core.events import Command

    try:
        minutes = float(text)
        Command(action="extend", minutes=minutes)  # the daemon's own bounds
    except (ValueError, ValidationError):
        raise argparse.ArgumentTypeError(f"{text!r}: minutes must be a number above 0 and at most 240") from None
    return minutes


def _room_parsers(sub: Any, with_config: Any) -> None:
    from relaxd.core.events import DEFAULT_EXTEND_MINUTES

    for name, (helptext, description) in ROOM_COMMANDS.items():
        p = with_config(sub.add_parser(name, help=helptext, description=f"{description} {ANSWER_NOTE}"))
        p.add_argument("room", metavar="ROOM", type=_room_id, help="the room id, as in the config")
        if name == "start":
            p.add_argument("--routine", help="routine to run (default: the room's)")
        if name == "extend":
            p.add_argument(
                "--minutes",
                type=_extend_minutes,
                default=DEFAULT_EXTEND_MINUTES,
                help=f"how many minutes longer (default {DEFAULT_EXTEND_MINUTES:g}, as a plain `extend`)",
            )
        p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the daemon (default 10)")
        p.set_defaults(func=cmd_remote)
    status = with_config(
        sub.add_parser(
            "status",
            help="show the state of every room, or of ROOM",
            description="A table of every room (or ROOM): state, routine, phase, when the phase and the session "
            "end, the next scheduled session and the devices, in the configured time zone. When relaxd is "
            "offline it says so at once, shows the rooms' last retained state and exits 1.",
        )
    )
    status.add_argument("room", metavar="ROOM", nargs="?", type=_room_id, help="only this room")
    status.add_argument("--json", action="store_true", help="print the daemon's answer as JSON (for scripts)")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the daemon (default 10)")
    status.set_defaults(func=cmd_remote)


def _schedule_parser(sub: Any, with_config: Any) -> None:
    schedule = sub.add_parser("schedule", help="manage recurring sessions of a running daemon")
    verbs = schedule.add_subparsers(dest="schedule_command", required=True, metavar="COMMAND")
    add = with_config(verbs.add_parser("add", help="add a run-time schedule (kept across restarts)"))
    add.add_argument("--room", required=True, help="the room")
    add.add_argument("--routine", help="routine to run (default: the room's)")
    kind = add.add_mutually_exclusive_group(required=True)
    kind.add_argument("--cron", metavar="LINE", help='five-field cron line in local time, e.g. "0 20 * * fri"')
    kind.add_argument("--every", metavar="INTERVAL", help='e.g. "2 weeks" or "1 day" (needs --at)')
    kind.add_argument("--once", metavar="DATETIME", help="one booked session, local time, e.g. 2026-12-24T18:30")
    add.add_argument("--on", metavar="DAYS", help="weekday(s) with --every N weeks, e.g. sun or mon,thu")
    add.add_argument("--at", metavar="HH:MM", help="local time with --every, e.g. 10:00")
    add.add_argument("--starting", metavar="DATE", help="first date with --every (default: today)")
    listing = with_config(verbs.add_parser("list", help="list every schedule with its next run"))
    listing.add_argument("--room", help="only this room's schedules")
    listing.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    remove = with_config(verbs.add_parser("remove", help="remove a run-time schedule"))
    remove.add_argument("id", help="the schedule id (see `relaxd schedule list`)")
    for p in (add, listing, remove):
        p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the daemon")
        p.set_defaults(func=cmd_remote)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return EX_FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())
