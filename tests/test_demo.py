"""`relaxd demo` as a user runs it: a subprocess on the simulators, checked from its output."""

from __future__ import annotations

import subprocess
import sys

from relaxd.routines import builtin_routines


def test_demo_runs_every_phase_and_restores_the_room() -> None:
    result = subprocess.run([sys.executable, "-m", "relaxd", "demo", "--speed", "1200"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for phase in builtin_routines()["classic"].phases:
        assert f'"phase": "{phase.name}"' in out
    assert "event room_restored" in out and "room restored exactly" in out
    assert "\x1b" not in out  # not a terminal: no control codes


def test_demo_rejects_an_unknown_routine() -> None:
    result = subprocess.run([sys.executable, "-m", "relaxd", "demo", "--routine", "nope"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "unknown routine 'nope'" in result.stderr
