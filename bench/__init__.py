"""Benchmarks for the DESIGN.md performance targets (``make bench`` / ``python -m bench``).

Everything here drives the real code paths (``voicechat.app.talk``, the ``voicechat`` CLI,
the local server) and only observes them: the probes in ``bench.probe`` wrap objects of the
client *in the bench process* instead of adding hooks to production code. Figures are medians
(and p99 where a target says p99) over repeated measurements; nothing here asserts on time.
"""
