"""The pure core: settings, routines, the room lifecycle, events and topics, schedules, ports."""
