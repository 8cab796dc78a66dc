"""coalesce_ranges: the pure grouping behind S3Backend.get_ranges."""

from __future__ import annotations

import itertools
import random

import pytest

from vault.errors import UsageError
from vault.storage.s3 import RangeGroup, coalesce_ranges


def test_empty() -> None:
    assert coalesce_ranges([]) == []


def test_neighbours_within_the_gap_merge() -> None:
    assert coalesce_ranges([(0, 10), (15, 5)], max_gap=5) == [RangeGroup(0, 20, (0, 1))]
    assert coalesce_ranges([(0, 10), (16, 5)], max_gap=5) == [
        RangeGroup(0, 10, (0,)),
        RangeGroup(16, 5, (1,)),
    ]


def test_adjacent_overlapping_and_contained_ranges_merge() -> None:
    groups = coalesce_ranges([(10, 10), (20, 5), (12, 3), (0, 100)], max_gap=0)
    assert groups == [RangeGroup(0, 100, (3, 0, 2, 1))]


def test_unsorted_input_keeps_original_indices() -> None:
    groups = coalesce_ranges([(1000, 10), (0, 10), (20, 10)], max_gap=10)
    assert groups == [RangeGroup(0, 30, (1, 2)), RangeGroup(1000, 10, (0,))]


def test_max_length_splits_groups_but_not_single_ranges() -> None:
    groups = coalesce_ranges([(0, 40), (40, 40), (80, 40), (120, 500)], max_gap=0, max_length=100)
    assert groups == [RangeGroup(0, 80, (0, 1)), RangeGroup(80, 40, (2,)), RangeGroup(120, 500, (3,))]


def test_zero_length_ranges_are_members() -> None:
    assert coalesce_ranges([(5, 0), (5, 10)], max_gap=0) == [RangeGroup(5, 10, (0, 1))]


@pytest.mark.parametrize("bad", [(-1, 5), (0, -1)])
def test_negative_ranges_are_refused(bad: tuple[int, int]) -> None:
    with pytest.raises(UsageError):
        coalesce_ranges([(0, 1), bad])


def test_random_ranges_are_covered_exactly_once() -> None:
    rng = random.Random(7)
    for _ in range(200):
        ranges = [(rng.randrange(0, 10_000), rng.randrange(0, 500)) for _ in range(rng.randrange(1, 30))]
        gap, cap = rng.randrange(0, 300), rng.choice([rng.randrange(1, 3000), 1 << 40])
        groups = coalesce_ranges(ranges, max_gap=gap, max_length=cap)
        members = sorted(i for g in groups for i in g.members)
        assert members == list(range(len(ranges)))
        for g in groups:
            for i in g.members:
                offset, length = ranges[i]
                assert g.offset <= offset and offset + length <= g.offset + g.length
            assert g.length <= cap or len(g.members) == 1
            assert g.offset == min(ranges[i][0] for i in g.members)
        offsets = [g.offset for g in groups]
        assert offsets == sorted(offsets)
        if cap == 1 << 40:  # only a binding max_length may split overlapping ranges
            for a, b in itertools.pairwise(groups):
                assert b.offset > a.offset + a.length + gap
