from participants.services.allocation import allocation_generate_rows

ARGS = dict(
    strata=["LDN|lt10", "LDN|ge10"],
    arms=[("A", 1), ("B", 1)],
    block_sizes=[2, 4],
    per_stratum=20,
    units_per_allocation=14,
    unit_prefix="MD",
)


def codes(rows):
    return [c for r in rows for c in r.unit_codes]


def test_unit_codes_never_repeat_codes_already_printed_for_another_list():
    first = allocation_generate_rows(seed=7, **ARGS)
    # The same seed would draw the very same labels; codes already in use must be skipped.
    second = allocation_generate_rows(seed=7, taken_codes=frozenset(codes(first)), **ARGS)
    assert not set(codes(first)) & set(codes(second))
    assert len(set(codes(second))) == len(codes(second))
    # The arm sequence is unaffected: only the labels differ.
    assert [r.arm for r in first] == [r.arm for r in second]
