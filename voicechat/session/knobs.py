"""The settings of a running ``Session`` a caller (or a test) may change: thin properties over
the parts that own them, kept apart so the facade in ``core.py`` reads as the conversation's
inputs and outputs. Pure, like the session.
"""

from __future__ import annotations

from voicechat.session.inbound import Inbound
from voicechat.session.lifetime import Lifetime
from voicechat.session.mic import Mic


class Knobs:
    """Mixed into ``Session``, whose ``__init__`` sets the parts named here."""

    _mic: Mic
    _lifetime: Lifetime
    _inbound: Inbound

    @property
    def muted(self) -> bool:
        return self._mic.muted

    @muted.setter
    def muted(self, on: bool) -> None:
        self._mic.muted = on

    @property
    def push_to_talk_mode(self) -> bool:
        return self._mic.push_to_talk_mode

    @push_to_talk_mode.setter
    def push_to_talk_mode(self, on: bool) -> None:
        self._mic.push_to_talk_mode = on

    @property
    def expiry_warning_s(self) -> float:
        return self._lifetime.expiry_warning_s

    @expiry_warning_s.setter
    def expiry_warning_s(self, seconds: float) -> None:
        self._lifetime.expiry_warning_s = seconds

    @property
    def recycle_margin_s(self) -> float:
        return self._lifetime.recycle_margin_s

    @recycle_margin_s.setter
    def recycle_margin_s(self, seconds: float) -> None:
        self._lifetime.recycle_margin_s = seconds

    @property
    def transcript_wait_s(self) -> float:
        return self._inbound.transcript_wait_s

    @transcript_wait_s.setter
    def transcript_wait_s(self, seconds: float) -> None:
        self._inbound.transcript_wait_s = seconds
