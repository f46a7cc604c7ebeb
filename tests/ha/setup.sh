#!/usr/bin/env bash
# Creates the separate Home Assistant virtualenv the discovery-schema tests validate payloads in.
# Usage: bash tests/ha/setup.sh [VENV_DIR]   (default: .venv-ha next to .venv; also $RELAXD_HA_VENV)
set -euo pipefail
cd "$(dirname "$0")/../.."

# 2024.3 is the newest Home Assistant core that runs on Python 3.11; paho-mqtt 1.6.1 is what its
# mqtt integration's manifest pins (relaxd itself uses paho 2 in .venv; the two never meet).
HA_VERSION="2024.3.3"
PAHO_VERSION="1.6.1"
VENV="${1:-${RELAXD_HA_VENV:-.venv-ha}}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

stamp="$VENV/.relaxd-ha-$HA_VERSION"
if [ -f "$stamp" ] && "$VENV/bin/python" -c 'import homeassistant.components.mqtt' 2>/dev/null; then
  echo "ha-venv: $VENV already has homeassistant $HA_VERSION"
  exit 0
fi

start=$(date +%s)
quiet() { { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2; }  # this machine's pip config
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | quiet
"$VENV/bin/python" -m pip install -q "homeassistant==$HA_VERSION" "paho-mqtt==$PAHO_VERSION" 2>&1 | quiet
# Importing the platforms proves the install is usable before any test relies on it.
"$VENV/bin/python" -c 'import homeassistant.components.mqtt.switch, homeassistant.components.mqtt.event'
touch "$stamp"
echo "ha-venv: homeassistant $HA_VERSION installed in $VENV in $(( $(date +%s) - start ))s"
