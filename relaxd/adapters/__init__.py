"""Adapters from the ports to device libraries, the bus, the clock and storage."""
