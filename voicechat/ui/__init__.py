"""The live panel: ``snapshot`` (plain data, no Rich), ``render`` (pure), ``live`` (front ends).

Nothing is imported here, so building snapshots does not pull in Rich.
"""
