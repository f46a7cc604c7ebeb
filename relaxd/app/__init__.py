"""The wiring: command line, daemon runtime, demo, remote client, simulators runner."""
