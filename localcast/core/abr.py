"""Adaptive bitrate (ABR): which rendition of the ladder to fetch next. Pure.

Everything that decides a rendition lives here; measuring throughput lives in
:mod:`localcast.core.throughput`, the buffer in :mod:`localcast.core.buffer`,
and nothing here knows about HTTP, playlists or clocks.

Theory of operation
-------------------
The strategy is dash.js's ``DYNAMIC`` rule (Spiteri, Sitaraman and Sparacio,
"From Theory to Practice: Improving Bitrate Adaptation in the DASH Reference
Player", MMSys 2018): two rules, each used where it is strong.

* **Throughput rule** while the buffer is low. With little media buffered only
  the network can say what is sustainable: pick the highest rendition whose
  bitrate fits under ``safety_factor`` x the throughput estimate. With no
  estimate yet (the first segment) pick the lowest rung. It moves down only
  when the budget falls more than ``down_margin`` (5%) below the current rung,
  so an estimate hovering at a rung's budget does not flip it.
* **BOLA** once the buffer holds ``stable_buffer_s`` (Spiteri, Urgaonkar and
  Sitaraman, "BOLA: Near-Optimal Bitrate Adaptation for Online Videos",
  INFOCOM 2016). BOLA-BASIC treats the buffer level ``Q`` (seconds) as the
  signal and picks the rendition ``m`` maximising::

      (V * (v_m + gamma) - Q) / S_m

  where ``S_m`` is the bitrate, ``v_m = ln(S_m / S_1) + 1`` its utility, and
  ``V``, ``gamma`` follow from the buffer target as in dash.js: the lowest rung
  is chosen below ``MIN_BUFFER_S`` (10 s) and the top rung around
  ``buffer_time = max(stable_buffer_s, 10 + 2 x rungs)``. BOLA needs no
  throughput estimate, so it rides out short throughput dips on the buffer.
* **Hysteresis** between them: BOLA takes over at ``stable_buffer_s`` and hands
  back below half of it, so the rule does not flap at one threshold.
* **Placeholder buffer**: when BOLA takes over it adds a virtual buffer so that
  it starts at the rung the throughput rule had reached instead of dropping to
  what the (still modest) real buffer implies. The placeholder is trimmed
  whenever the effective buffer exceeds what the chosen rung needs, and dropped
  when control returns to the throughput rule.
* **BOLA-O** (oscillation avoidance): BOLA never moves *up* to a rung the
  throughput estimate cannot sustain, beyond the rung it already has. When the
  link's rate lies between two rungs it stays on the lower one instead of
  alternating.
* **Pause**: when the effective buffer is above the level at which even the
  chosen rung scores <= 0, BOLA asks the caller to wait ``delay_s`` before the
  next download rather than fill the buffer with low-quality media.

All inputs and outputs are frozen dataclasses; :func:`choose` is a pure function
``(ladder, state, buffer_s, throughput_bps, config) -> Decision``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

MIN_BUFFER_S = 10.0  # dash.js BOLA: the lowest rung below this buffer level
BUFFER_PER_LEVEL_S = 2.0  # dash.js BOLA: buffer target grows with the ladder size
_TIE_S = 1e-6  # nudges a computed threshold past float rounding
MIN_DELAY_S = 0.01  # shorter pauses are rounding noise, not worth a sleep


class AbrError(ValueError):
    """The ladder or configuration is unusable."""


class Mode(StrEnum):
    THROUGHPUT = "throughput"
    BOLA = "bola"


@dataclass(frozen=True)
class Ladder:
    """Rendition bitrates (bits/s), strictly ascending; a decision is an index into it."""

    bitrates_bps: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.bitrates_bps:
            raise AbrError("a ladder needs at least one rendition")
        if any(b <= 0 for b in self.bitrates_bps):
            raise AbrError("bitrates must be positive")
        if any(a >= b for a, b in itertools.pairwise(self.bitrates_bps)):
            raise AbrError("bitrates must be strictly ascending")

    def __len__(self) -> int:
        return len(self.bitrates_bps)

    @classmethod
    def of(cls, bitrates_bps: Sequence[int]) -> Ladder:
        return cls(tuple(bitrates_bps))


@dataclass(frozen=True)
class AbrConfig:
    stable_buffer_s: float = 12.0  # dash.js stableBufferTime: BOLA takes over here
    safety_factor: float = 0.9  # share of the throughput estimate a rendition may use
    down_margin: float = 0.05  # keep the current rung until the budget falls this much below it

    def __post_init__(self) -> None:
        if self.stable_buffer_s <= 0:
            raise AbrError("stable_buffer_s must be positive")
        if not 0 < self.safety_factor <= 1:
            raise AbrError("safety_factor must be in (0, 1]")
        if not 0 <= self.down_margin < 1:
            raise AbrError("down_margin must be in [0, 1)")

    @property
    def switch_on_s(self) -> float:
        return self.stable_buffer_s

    @property
    def switch_off_s(self) -> float:
        return self.stable_buffer_s / 2


@dataclass(frozen=True)
class AbrState:
    """What the rule remembers between decisions."""

    last_index: int | None = None
    mode: Mode = Mode.THROUGHPUT
    placeholder_s: float = 0.0


@dataclass(frozen=True)
class Decision:
    index: int
    reason: str
    state: AbrState
    delay_s: float = 0.0  # BOLA's pause: wait this long before downloading


@dataclass(frozen=True)
class BolaParams:
    utilities: tuple[float, ...]
    v: float  # V, the weight of utility against buffer (seconds)
    gamma: float  # gamma * p in the paper, the rebuffer-avoidance term


def bola_params(ladder: Ladder, stable_buffer_s: float) -> BolaParams | None:
    """``V`` and ``gamma`` from the buffer target (dash.js); ``None`` for a one-rung ladder."""
    if len(ladder) < 2:
        return None
    low = ladder.bitrates_bps[0]
    utilities = tuple(math.log(b / low) + 1.0 for b in ladder.bitrates_bps)
    buffer_time = max(stable_buffer_s, MIN_BUFFER_S + BUFFER_PER_LEVEL_S * len(ladder))
    gamma = (utilities[-1] - 1.0) / (buffer_time / MIN_BUFFER_S - 1.0)
    return BolaParams(utilities=utilities, v=MIN_BUFFER_S / gamma, gamma=gamma)


def bola_index(ladder: Ladder, params: BolaParams, buffer_s: float) -> int:
    """BOLA-BASIC: the rung with the best score at this buffer level (ties go up)."""
    best, best_score = 0, -math.inf
    for i, (rate, utility) in enumerate(zip(ladder.bitrates_bps, params.utilities, strict=True)):
        score = (params.v * (utility + params.gamma) - buffer_s) / rate
        if score >= best_score:
            best, best_score = i, score
    return best


def min_buffer_for(ladder: Ladder, params: BolaParams, index: int) -> float:
    """The lowest buffer level at which BOLA prefers ``index`` to every lower rung."""
    level = 0.0
    q_rate, q_util = ladder.bitrates_bps[index], params.utilities[index]
    for i in range(index):
        i_rate, i_util = ladder.bitrates_bps[i], params.utilities[i]
        cross = params.v * (params.gamma + (q_rate * i_util - i_rate * q_util) / (q_rate - i_rate))
        level = max(level, cross)
    return level


def max_buffer_for(params: BolaParams, index: int) -> float:
    """Above this buffer level rung ``index`` scores <= 0: BOLA would rather wait."""
    return params.v * (params.utilities[index] + params.gamma)


def throughput_index(ladder: Ladder, throughput_bps: float | None, safety_factor: float) -> int:
    """The highest rung under ``safety_factor`` x throughput; the lowest without an estimate."""
    if throughput_bps is None:
        return 0
    budget = throughput_bps * safety_factor
    index = 0
    for i, rate in enumerate(ladder.bitrates_bps):
        if rate <= budget:
            index = i
    return index


def _hold_against_noise(
    ladder: Ladder,
    tput: int,
    last_index: int | None,
    throughput_bps: float | None,
    config: AbrConfig,
) -> int:
    """Switch-down hysteresis: an estimate hovering at a rung's budget must not flip it.

    The current rung is kept while it stays within ``down_margin`` of the
    budget; a real fall in throughput (more than the margin) still moves down.
    """
    if last_index is None or throughput_bps is None or tput >= last_index:
        return tput
    last = min(last_index, len(ladder) - 1)
    budget = throughput_bps * config.safety_factor
    if ladder.bitrates_bps[last] * (1 - config.down_margin) <= budget:
        return last
    return tput


def _wants_bola(mode: Mode, buffer_s: float, config: AbrConfig) -> bool:
    if mode is Mode.BOLA:
        return buffer_s >= config.switch_off_s
    return buffer_s >= config.switch_on_s


def _mbps(bps: float) -> str:
    return f"{bps / 1e6:.2f} Mb/s"


def choose(
    ladder: Ladder,
    state: AbrState,
    buffer_s: float,
    throughput_bps: float | None,
    config: AbrConfig | None = None,
) -> Decision:
    """The next rendition for ``buffer_s`` seconds buffered and a throughput estimate."""
    cfg = config or AbrConfig()
    tput = throughput_index(ladder, throughput_bps, cfg.safety_factor)
    tput = _hold_against_noise(ladder, tput, state.last_index, throughput_bps, cfg)
    params = bola_params(ladder, cfg.stable_buffer_s)
    if params is None or state.last_index is None or not _wants_bola(state.mode, buffer_s, cfg):
        if throughput_bps is None:
            reason = "throughput: no estimate yet, lowest rendition"
        else:
            reason = (
                f"throughput: {_mbps(throughput_bps)} x{cfg.safety_factor:g} "
                f"fits {_mbps(ladder.bitrates_bps[tput])}"
            )
        return Decision(tput, reason, AbrState(last_index=tput, mode=Mode.THROUGHPUT))

    last = min(state.last_index, len(ladder) - 1)
    if state.mode is Mode.BOLA:
        placeholder = state.placeholder_s
    else:  # taking over: start where the throughput rule left off
        placeholder = max(0.0, min_buffer_for(ladder, params, last) - buffer_s + _TIE_S)
    effective = buffer_s + placeholder
    index = bola_index(ladder, params, effective)
    reason = f"bola: buffer {buffer_s:.1f} s (+{placeholder:.1f} s placeholder)"
    if index > last and index > tput:
        index = max(tput, last)
        reason += f", held at {_mbps(ladder.bitrates_bps[index])} (throughput cannot sustain more)"
    else:
        reason += f" -> {_mbps(ladder.bitrates_bps[index])}"

    delay = max(0.0, effective - max_buffer_for(params, index))
    if delay <= placeholder:
        placeholder -= delay
        delay = 0.0
    else:
        delay -= placeholder
        placeholder = 0.0
    if delay < MIN_DELAY_S:
        delay = 0.0
    return Decision(
        index,
        reason,
        AbrState(last_index=index, mode=Mode.BOLA, placeholder_s=placeholder),
        delay_s=delay,
    )
