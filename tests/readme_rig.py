"""The README's shell blocks as a user runs them: extracted, run with bash on this checkout, checked against the CLI."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from relaxd.app.cli import build_parser
from tests.mosquitto import wait_until

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
_SEPARATORS = {"&&", "||", ";", "|", "&"}
_KEYWORDS = {"until", "while", "if", "then", "do", "else", "elif", "!", "{", "time", "exec"}


def section(title: str, text: str | None = None) -> str:
    """The README's text from the heading `title` (e.g. "## Schedules") to the next heading of its level."""
    text = README.read_text() if text is None else text
    level = title.split(" ", 1)[0]
    start = text.index(f"\n{title}\n") + 1
    after = re.search(rf"^{level} ", text[start + len(title) :], re.M)
    return text[start : start + len(title) + after.start()] if after else text[start:]


def sh_blocks(text: str | None = None) -> list[str]:
    """Every ```sh block of the text (default: the whole README), in order."""
    text = README.read_text() if text is None else text
    return [body for lang, body in _BLOCK.findall(text) if lang == "sh"]


def relaxd_bin(tmp_path: Path) -> Path:
    """A directory with a `relaxd` that is this checkout's, run by this interpreter (put it first in PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "relaxd"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m relaxd "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any RELAXD_ variable of the caller, this checkout's relaxd first in PATH."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RELAXD_")}
    env["PATH"] = f"{relaxd_bin(tmp_path)}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONUNBUFFERED"] = "1"
    # This checkout's package even where it is not installed (the blocks run in other directories).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(README.parent), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


class Shell:
    """Runs blocks as written with bash, strictly (-euo pipefail), each in a session of its own so
    that close() can end what they left running in the background (as closing the terminal would)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.groups: list[int] = []

    def run(self, script: str, timeout_s: float = 60) -> Ran:
        n = len(self.groups)
        out_path, err_path = self.cwd / f".block{n}.out", self.cwd / f".block{n}.err"
        # Files, not pipes: a background job keeps a pipe open, and reading it would never end.
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.groups.append(proc.pid)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            end_group(proc.pid)
            proc.wait(timeout=10)
            code = -1
        return Ran(code, out_path.read_text(), err_path.read_text())

    def close(self) -> None:
        for pgid in self.groups:
            end_group(pgid)

    def __enter__(self) -> Shell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def end_group(pgid: int, timeout_s: float = 20) -> None:
    """SIGTERM what a block left running in the background (as closing the shell would), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    if not wait_until(lambda: not group_members(pgid), timeout_s, interval_s=0.05):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def relaxd_commands(block: str) -> list[list[str]]:
    """The arguments of every `relaxd` (or `/path/bin/relaxd`) command in a block, one list per command."""
    # The README's defaults (`HUE_PORT=${HUE_PORT:-8080}`) stand in for its variables.
    defaults = dict(re.findall(r"(\w+)=\$\{\1:-([^}]*)\}", README.read_text()))
    block = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), block)
    commands: list[list[str]] = []
    for line in block.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
        for i, word in enumerate(words):
            before = words[i - 1] if i else ";"
            if Path(word).name == "relaxd" and (before in _SEPARATORS | _KEYWORDS or "=" in before):
                args = []
                for arg in words[i + 1 :]:
                    if arg in _SEPARATORS or arg.startswith((">", "2>")):
                        break
                    args.append(arg)
                commands.append(args)
    return commands


def parse_problem(args: list[str]) -> str | None:
    """Why `relaxd ARGS` is not a valid command line (argparse's complaint), or an option its help does not
    list; None if it is fine."""
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(args)
    except SystemExit:
        return f"relaxd {shlex.join(args)}: {err.getvalue().strip()}"
    path: list[str] = []
    for arg in args:  # the subcommand words: run, schedule add, hue pair, ...
        if arg.startswith("-") or arg not in _subcommands(parser, path):
            break
        path.append(arg)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([*path, "--help"])
    for arg in args:
        option = arg.split("=", 1)[0]
        if option.startswith("-") and not re.search(rf"(^|[\s,\[]){re.escape(option)}\b", out.getvalue()):
            return f"relaxd {' '.join(path)} --help does not list {option}"
    return None


def _subcommands(parser: argparse.ArgumentParser, path: list[str]) -> set[str]:
    current: argparse.ArgumentParser | None = parser
    for word in path:
        current = _choices(current).get(word) if current is not None else None
    return set(_choices(current)) if current is not None else set()


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
