"""Sensors: tasks that wait for a condition (in reschedule mode, holding no worker slot)."""
