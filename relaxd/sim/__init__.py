"""Simulated devices (Hue bridge, Sonos speaker, MQTT broker) on 127.0.0.1 for tests and the demo."""
