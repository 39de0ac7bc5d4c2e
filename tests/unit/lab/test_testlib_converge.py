"""What the convergence benchmark and the lab tests read from the probe's lines: when every edge
shows a change (lab/testlib/converge.py)."""
from __future__ import annotations

from lab.testlib.converge import Answer, first_seen, last_of, parse_answers

EDGES = ["10.213.0.11", "10.213.0.12"]


def answers(*rows: tuple[float, int, str]) -> list[Answer]:
    return [Answer(sent, EDGES[edge], pod) for sent, edge, pod in rows]


def test_parse_answers_reads_the_probe_s_lines_and_skips_a_torn_one():
    lines = ["1.500000 10.213.0.11 s2-a 0.0021\n", "1.510000 10.213.0.12 - 0.5001\n", "1.52"]
    assert parse_answers(lines) == [Answer(1.5, "10.213.0.11", "s2-a"), Answer(1.51, "10.213.0.12", "")]


def test_first_seen_is_the_last_edge_s_first_answer_of_a_new_pod():
    seen = answers((1.0, 0, "a"), (1.1, 1, "a"), (1.2, 0, "new"), (1.3, 1, "b"), (1.4, 0, "a"), (1.5, 1, "new"))
    assert first_seen(seen, EDGES, {"a", "b"}) == 1.5
    assert first_seen(seen[:5], EDGES, {"a", "b"}) is None  # edge2 has not shown it yet
    assert first_seen(seen, EDGES, {"a", "b"}, after=1.25) is None  # edge1's only answer was before


def test_last_of_waits_for_quiet_after_the_removed_pod_s_last_answer_on_every_edge():
    rows = [(1.0, 0, "gone"), (1.0, 1, "gone"), (1.1, 0, "a"), (1.1, 1, ""), (1.2, 0, "a"), (1.2, 1, "a")]
    rows += [(1.2 + i / 10, e, "a") for i in range(1, 12) for e in (0, 1)]
    assert last_of(answers(*rows), EDGES, "gone", 1.0) == 1.2  # edge2's failed request counts as the old state
    assert last_of(answers(*rows[:12]), EDGES, "gone", 1.0) is None  # not quiet long enough yet
    assert last_of(answers(*rows, (2.5, 0, "gone")), EDGES, "gone", 1.0) is None  # it came back
