"""`relaxd demo --routine breathe` and `relaxd routines`: the breath shown and listed as a user sees it."""

from __future__ import annotations

import os
import subprocess
import sys

from relaxd.core.routines import builtin_routines
from tests.test_demo import run_demo


def test_the_demo_of_breathe_follows_the_breath_and_restores_the_room() -> None:
    result = run_demo("--routine", "breathe", "--speed", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for phase in builtin_routines()["breathe"].phases:
        assert f'"phase": "{phase.name}"' in out
    # the progress line follows the breath from the room's breath topic, in the breathing phase only
    breathing = [line for line in out.splitlines() if "slow_breathing" in line and line.startswith("[")]
    assert breathing and any("; breathe in 4s" in line or "; breathe out 6s" in line for line in breathing)
    assert not any("breathe in" in line for line in out.splitlines() if " settle " in line)
    assert "room restored exactly" in out and "\x1b" not in out
    # 300 times real speed is far quicker than a bridge's one group command a second: said, once
    assert result.stderr.count("too quick for the lights' rate limit") == 1
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr


def test_routines_lists_the_breathing_and_focus_routines() -> None:
    env = {**os.environ, "RELAXD_CONFIG": "/nonexistent/relaxd.yaml"}
    result = subprocess.run(
        [sys.executable, "-m", "relaxd", "routines"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "breathe  (15m, 3 phases)" in out
    assert "breathing 4s in, 6s out (6/min) 15-35%, volume +2" in out
    assert "shoulders  (40m, 5 phases)" in out and "lower_back  (35m, 5 phases)" in out
    assert out.count("focus upper_back") == 5 and out.count("focus lower_back") == 5
