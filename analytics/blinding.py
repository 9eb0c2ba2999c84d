"""Blinding indices: Bang (per arm, 2004) and James (overall, 1996), with normal-approximation intervals.

`table` is a 3 × 2 guess table: rows = guess active, guess placebo, don't know; columns = actual active,
actual placebo (a 2 × 2 table is read as having no don't-know answers). Results agree with the R package
BI 1.2.0 (Schwartz & Mercaldo).

    >>> from analytics.blinding import bang, james
    >>> james([[82, 27], [25, 29], [170, 83]]).index  # CRISP, Bang 2004 Table 7
    0.7479...

Interpretation: Bang |BI| <= 0.2 is read as blinding maintained (1 all correct, 0 random, -1 all wrong);
James 1 is complete blinding, 0.5 random guessing, 0 complete unblinding, and unblinding is claimed when the
upper limit of the two-sided interval is below 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["BlindingEstimate", "bang", "james", "guess_table"]

# James' weights for the guess rows (active, placebo) × actual columns (active, placebo): correct 0,
# incorrect 0.5. Don't know has weight 1 and enters through P_dk.
_JAMES_WEIGHTS = ((0.0, 0.5), (0.5, 0.0))


@dataclass(frozen=True)
class BlindingEstimate:
    """An index with its standard error and confidence limits; all None where the index is undefined."""

    index: float | None
    se: float | None
    lower: float | None
    upper: float | None
    n: int = 0

    @property
    def defined(self) -> bool:
        return self.index is not None

    def as_dict(self) -> dict:
        return {"index": self.index, "se": self.se, "lower": self.lower, "upper": self.upper, "n": self.n}


_UNDEFINED = BlindingEstimate(index=None, se=None, lower=None, upper=None)


def _normalise(table: Sequence[Sequence[int]]) -> list[list[int]]:
    rows = [list(r) for r in table]
    if len(rows) == 2:
        rows.append([0, 0])
    if len(rows) != 3 or any(len(r) != 2 for r in rows):
        raise ValueError("table must be 3 × 2 (guess active, guess placebo, don't know × actual active, placebo)")
    out: list[list[int]] = []
    for r in rows:
        cells = []
        for v in r:
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError("table cells must be non-negative integers")
            cells.append(int(v))
        out.append(cells)
    return out


def _z(conf: float, two_sided: bool) -> float:
    if not 0 < conf < 1:
        raise ValueError("conf must be between 0 and 1")
    alpha = (1 - conf) / 2 if two_sided else 1 - conf
    return NormalDist().inv_cdf(1 - alpha)


def bang(table: Sequence[Sequence[int]], conf: float = 0.95, sided: str = "one") -> dict[str, BlindingEstimate]:
    """Bang's blinding index for each arm: {"active": est, "placebo": est}.

    BI_j = (correct_j − wrong_j) / n_j, where n_j counts don't-know answers too. `sided="one"` (Bang's
    preference) gives the one-sided lower bound `BI − z·SE` with z = z_{conf} and the upper limit 1;
    `sided="two"` gives `BI ± z_{(1+conf)/2}·SE`. An arm with no active/placebo guess (no answers, or only
    don't-know) has no defined index: every field is None.
    """
    if sided not in ("one", "two"):
        raise ValueError('sided must be "one" or "two"')
    t = _normalise(table)
    z = _z(conf, two_sided=sided == "two")
    out: dict[str, BlindingEstimate] = {}
    for arm, col, correct_row, wrong_row in (("active", 0, 0, 1), ("placebo", 1, 1, 0)):
        n = t[0][col] + t[1][col] + t[2][col]
        if t[0][col] + t[1][col] == 0:
            out[arm] = BlindingEstimate(index=None, se=None, lower=None, upper=None, n=n)
            continue
        correct, wrong = t[correct_row][col], t[wrong_row][col]
        index = (correct - wrong) / n
        p1, p2 = t[0][col] / n, t[1][col] / n
        se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2) + 2 * p1 * p2) / n)
        lower = index - z * se
        upper = 1.0 if sided == "one" else index + z * se
        out[arm] = BlindingEstimate(index=index, se=se, lower=lower, upper=upper, n=n)
    return out


def james(table: Sequence[Sequence[int]], conf: float = 0.95) -> BlindingEstimate:
    """James' overall blinding index with a two-sided interval. Only don't-know answers: BI = 1, SE = 0.

    Undefined (all None) for an empty table, or when the expected disagreement is zero (e.g. everyone in one
    arm guessing that arm), where the index divides by zero.
    """
    t = _normalise(table)
    N = sum(sum(r) for r in t)
    if N == 0:
        return _UNDEFINED
    z = _z(conf, two_sided=True)
    P = [[v / N for v in r] for r in t]
    p_dk = P[2][0] + P[2][1]
    if t[0] == [0, 0] and t[1] == [0, 0]:
        return BlindingEstimate(index=1.0, se=0.0, lower=1.0, upper=1.0, n=N)
    row = [P[i][0] + P[i][1] for i in range(3)]
    # Column margins among those who guessed: P_·j − P_3j.
    col_guessed = [P[0][j] + P[1][j] for j in range(2)]
    w = _JAMES_WEIGHTS
    q = 1 - p_dk
    pdo = sum(w[i][j] * P[i][j] for i in range(2) for j in range(2)) / q
    s = sum(w[i][j] * row[i] * col_guessed[j] for i in range(2) for j in range(2))
    if s == 0:
        return BlindingEstimate(index=None, se=None, lower=None, upper=None, n=N)
    pde = s / q**2
    kd = (pdo - pde) / pde
    index = (1 + p_dk + q * kd) / 2
    num = 0.0
    for i in range(2):
        for j in range(2):
            extra = sum(w[r][j] * row[r] + w[i][r] * col_guessed[r] for r in range(2))
            num += P[i][j] * q**2 * (q * w[i][j] - (1 + kd) * extra) ** 2
    var = (num / (4 * s**2) + p_dk * q - q * (1 + kd) * (p_dk + q * (1 + kd) / 4)) / N
    se = math.sqrt(max(var, 0.0))
    return BlindingEstimate(index=index, se=se, lower=index - z * se, upper=index + z * se, n=N)


def guess_table(pairs) -> list[list[int]]:
    """Build the 3 × 2 table from (guess, actual) pairs: guess in active/placebo/dont_know, actual in
    active/placebo. Other values are ignored."""
    rows = {"active": 0, "placebo": 1, "dont_know": 2}
    cols = {"active": 0, "placebo": 1}
    t = [[0, 0], [0, 0], [0, 0]]
    for guess, actual in pairs:
        if guess in rows and actual in cols:
            t[rows[guess]][cols[actual]] += 1
    return t
