"""Bang and James blinding indices against the worked tables (reference: R package BI 1.2.0).

Numbers copied from the checked reference (Bang, Ni & Davis 2004 Table 7 — CRISP; James et al. 1996 Table V).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.blinding import bang, guess_table, james

# case: (table, (james, se), (bang active, se), (bang placebo, se))
WORKED = {
    "crisp": ([[82, 27], [25, 29], [170, 83]], (0.7479, 0.0217), (0.2058, 0.0352), (0.0144, 0.0538)),
    "james_table_v": ([[145, 34], [71, 59], [76, 38]], (0.5345, 0.0241), (0.2534, 0.0481), (0.1908, 0.0717)),
    "all_correct": ([[50, 0], [0, 50], [0, 0]], (0.0, 0.0), (1.0, 0.0), (1.0, 0.0)),
    "random": ([[25, 25], [25, 25], [0, 0]], (0.5, 0.05), (0.0, 0.1414), (0.0, 0.1414)),
}


@pytest.mark.parametrize("case", WORKED)
def test_james_matches_worked_tables(case):
    table, (index, se), _, _ = WORKED[case]
    est = james(table)
    assert round(est.index, 4) == index
    assert round(est.se, 4) == se
    # Two-sided 95% interval.
    assert est.lower == pytest.approx(est.index - 1.959964 * est.se, abs=1e-6)
    assert est.upper == pytest.approx(est.index + 1.959964 * est.se, abs=1e-6)


@pytest.mark.parametrize("case", WORKED)
def test_bang_matches_worked_tables(case):
    table, _, (a, a_se), (p, p_se) = WORKED[case]
    est = bang(table)
    assert (round(est["active"].index, 4), round(est["active"].se, 4)) == (a, a_se)
    assert (round(est["placebo"].index, 4), round(est["placebo"].se, 4)) == (p, p_se)


def test_bang_crisp_one_sided_lower_bounds():
    est = bang([[82, 27], [25, 29], [170, 83]], conf=0.95, sided="one")
    assert round(est["active"].lower, 4) == 0.1478
    assert round(est["placebo"].lower, 4) == -0.0741
    assert est["active"].upper == 1.0


def test_bang_two_sided_interval_is_symmetric():
    est = bang([[82, 27], [25, 29], [170, 83]], sided="two")["active"]
    assert est.lower == pytest.approx(0.2058 - 1.96 * 0.0352, abs=2e-4)
    assert est.upper == pytest.approx(0.2058 + 1.96 * 0.0352, abs=2e-4)


def test_bang_arm_with_only_dont_know_is_undefined_not_zero():
    est = bang([[10, 0], [5, 0], [3, 20]])
    assert est["placebo"].index is None
    assert est["placebo"].se is None and est["placebo"].lower is None
    assert est["active"].index == pytest.approx((10 - 5) / 18)


def test_james_only_dont_know_is_complete_blinding():
    est = james([[0, 0], [0, 0], [7, 9]])
    assert (est.index, est.se) == (1.0, 0.0)


def test_james_empty_table_is_undefined():
    assert james([[0, 0], [0, 0], [0, 0]]).index is None


def test_two_by_two_table_means_no_dont_know():
    assert james([[25, 25], [25, 25]]).index == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [[[1, 2]], [[1, 2, 3], [1, 2, 3], [1, 2, 3]], [[-1, 0], [0, 0], [0, 0]]])
def test_malformed_tables_are_rejected(bad):
    with pytest.raises(ValueError):
        james(bad)
    with pytest.raises(ValueError):
        bang(bad)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError):
        bang([[1, 1], [1, 1], [0, 0]], sided="both")
    with pytest.raises(ValueError):
        james([[1, 1], [1, 1], [0, 0]], conf=1.5)


def test_guess_table_counts_pairs():
    pairs = [("active", "active"), ("placebo", "active"), ("dont_know", "placebo"), ("placebo", "placebo")]
    assert guess_table(pairs) == [[1, 0], [1, 1], [0, 1]]


cells = st.integers(min_value=0, max_value=500)
tables_3x2 = st.lists(st.lists(cells, min_size=2, max_size=2), min_size=3, max_size=3)


@given(tables_3x2)
@settings(max_examples=300, deadline=None)
def test_indices_stay_in_range_and_mirror(table):
    j = james(table)
    if j.index is not None:
        assert -1e-9 <= j.index <= 1 + 1e-9 and j.se >= 0 and j.lower <= j.index <= j.upper
    b = bang(table)
    for est in b.values():
        if est.index is not None:
            assert -1 - 1e-9 <= est.index <= 1 + 1e-9 and est.se >= 0
    # Swapping the arms (columns) and the active/placebo guesses (rows) swaps the Bang indices.
    mirrored = [[table[1][1], table[1][0]], [table[0][1], table[0][0]], [table[2][1], table[2][0]]]
    m = bang(mirrored)
    assert m["active"].index == b["placebo"].index or (
        m["active"].index is not None and m["active"].index == pytest.approx(b["placebo"].index)
    )
