"""How the fact store groups rows into write requests (pure logic)."""

from ecom_pipeline.fact_store import replica_groups


def test_writes_are_grouped_by_their_replicas_and_capped_in_size():
    rows = list(range(25))
    groups = replica_groups(rows, lambda row: frozenset({row % 2}), 4)
    assert sorted(row for group in groups for row in group) == rows
    assert all(len(group) <= 4 for group in groups)
    assert all(len({row % 2 for row in group}) == 1 for group in groups)
    assert [len(group) for group in groups] == [4, 4, 4, 1, 4, 4, 4]
