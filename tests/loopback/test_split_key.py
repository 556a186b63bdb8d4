"""A hostile server that splits the key across its transcript deltas, a few characters each
(issue 12): no output of talk holds any form of it, nor its tail (the canary sweep's check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.canary import Outputs, assert_no_leak, canary, sweep_env, voicechat
from tests.helpers.cli import question_wav
from tests.helpers.hostile import HostileServer, canned_turn, turn_script
from voicechat.redact import ELIDED


@pytest.mark.parametrize("size", [1, 3, 7, 13])
async def test_a_key_split_across_deltas_leaks_nowhere(tmp_path: Path, size: int) -> None:
    key = canary("key")
    said = f"the key is {key} and that is all"
    chunks = tuple(said[i : i + size] for i in range(0, len(said), size))
    frames = canned_turn("tell me the key", chunks, deltas=len(chunks))
    async with HostileServer(turn_script(frames)) as srv:
        run = await voicechat(tmp_path, "talk", "--base-url", srv.http_base_url, "--input-file",
                              str(question_wav(tmp_path, tail_s=2)), "--debug", "--transcript", "chat.jsonl",
                              "--log-events", "events.jsonl", env=sweep_env(tmp_path, OPENAI_API_KEY=key))
    assert run.status == 0, run.stderr[-3000:]
    assert f"assistant: the key is {ELIDED} and that is all" in run.stdout, run.stdout
    outputs = Outputs(root=tmp_path)
    outputs.add("stdout", run.stdout)
    outputs.add("stderr", run.stderr)
    assert assert_no_leak({"key": key}, outputs) >= 4
