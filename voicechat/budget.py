"""Spending limits of one ``voicechat talk``: ``--max-cost`` and ``--max-minutes``.

Pure, like the session core: the caller passes the time (a monotonic clock, in seconds) and the
usage each ``response.done`` reports; out come notices and, once a limit is reached, a reason
to stop. Cost is the estimate of `voicechat.pricing` (a model with no price at all cannot be
held to ``--max-cost``, and validation refuses to start; one priced from its family's says so
in `start_notices` and in every figure); minutes are wall time since the budget started.

What happens at a limit (the app carries it out): a warning at 80 % of each limit, once. At
the limit the microphone is muted so no new turn (and no new cost) starts, the reply being
spoken may finish playing, and the conversation ends at the next quiet moment, or
``GRACE_S`` after the limit at the latest (then the reply is cut to what was heard, as a
quit would). ``talk`` then ends with status 0 and ``stopped: --max-minutes 5 reached``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from voicechat import effects as fx
from voicechat.pricing import ModelPrice, Spend, quote
from voicechat.protocol.events import Usage

WARN_AT = 0.8
GRACE_S = 15.0


@dataclass
class Budget:
    model: str
    max_cost: float | None = None  # USD
    max_minutes: float | None = None
    started: float = 0.0  # monotonic seconds
    usage: Usage = field(default_factory=Usage)
    reached: str | None = None  # why the conversation is to stop, e.g. "--max-minutes 5 reached"
    reached_at: float | None = None
    _warned: set[str] = field(default_factory=set)
    _spend: Spend | None = None  # the conversation's own figure, when it hands one (`track`)
    prices: tuple[ModelPrice, ...] = ()  # the config file's [prices."MODEL"] tables

    @property
    def active(self) -> bool:
        return self.max_minutes is not None or (self.max_cost is not None and self.enforceable)

    @property
    def enforceable(self) -> bool:
        """True when ``--max-cost`` can be held: the model has a price (its own or its family's)."""
        return quote(self.model, self.prices).price is not None

    @property
    def spend(self) -> Spend:
        if self._spend is not None and self._spend.usage is self.usage:
            return self._spend
        return Spend.of(self.model, self.usage, self.prices)

    @property
    def cost(self) -> float | None:
        return self.spend.cost_usd

    def track(self, spend: Spend) -> None:
        """The conversation's usage and cost so far (summed and priced once, by the conversation)."""
        self._spend = spend
        self.usage = spend.usage

    def start_notices(self) -> list[fx.Notice]:
        if self.max_cost is None:
            return []
        found = quote(self.model, self.prices)
        if found.price is None:
            return [fx.Notice("warning", f"--max-cost cannot be enforced: no price is known for model {self.model}")]
        if found.estimated_from is not None:
            return [fx.Notice("info", f"--max-cost: {self.model} has no published price; its cost is estimated "
                                      f"at {found.estimated_from}'s")]
        return []

    def add(self, usage: Usage | None) -> None:
        """The usage of one finished response (``response.done``)."""
        if usage is not None:
            self.usage = self.usage + usage

    def check(self, now: float) -> list[fx.Notice]:
        """Warnings at 80 %, and the notice that a limit is reached (then ``reached`` is set)."""
        if self.reached is not None:
            return []
        out: list[fx.Notice] = []
        if self.max_minutes is not None:
            minutes = max(0.0, now - self.started) / 60
            if minutes >= self.max_minutes:
                self.reached = f"--max-minutes {_num(self.max_minutes)} reached"
            elif minutes >= WARN_AT * self.max_minutes and "minutes" not in self._warned:
                self._warned.add("minutes")
                left = (self.max_minutes - minutes) * 60
                out.append(fx.Notice("warning", f"{WARN_AT:.0%} of --max-minutes {_num(self.max_minutes)} used: "
                                                f"{_duration(left)} left"))
        spend = self.spend if self.max_cost is not None else None
        spent = spend.cost_usd if spend is not None else None
        if self.reached is None and spend is not None and spent is not None and self.max_cost is not None:
            about = f"(about ${spent:.4f}{', estimated' if spend.estimated else ''})"
            if spent >= self.max_cost:
                self.reached = f"--max-cost {_num(self.max_cost)} reached {about}"
            elif spent >= WARN_AT * self.max_cost and "cost" not in self._warned:
                self._warned.add("cost")
                out.append(fx.Notice("warning", f"{WARN_AT:.0%} of --max-cost {_num(self.max_cost)} used {about}"))
        if self.reached is not None:
            self.reached_at = now
            out.append(fx.Notice("warning", f"{self.reached}: the microphone is off; ending after this reply"))
        return out

    def should_stop(self, now: float, *, quiet: bool) -> bool:
        """After a limit: stop once nothing is being said (``quiet``), or after the grace period."""
        if self.reached is None or self.reached_at is None:
            return False
        return quiet or now - self.reached_at >= GRACE_S


def _duration(seconds: float) -> str:
    whole = max(0, math.ceil(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _num(value: float) -> str:
    """A limit as the user would write it: 5, 0.5, 0.00001 (never 1e-05)."""
    return f"{value:.10f}".rstrip("0").rstrip(".")
