"""Benchmark 7 reads wrk's own summary: rate, p99 and failures, in any latency unit."""
from __future__ import annotations

import pytest

from bench._dataplane import wrk_figures
from lab.testlib.steps import LabError

WRK = """Running 1s test @ http://10.213.0.11/
  2 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.32ms    2.31ms  16.42ms   77.29%
    Req/Sec   600.10    148.29     0.88k    60.00%
  Latency Distribution
     50%    2.57ms
     75%    4.54ms
     90%    6.52ms
     99%   {p99}
  598 requests in 1.00s, 3.10MB read
{errors}Requests/sec:    596.29
Transfer/sec:      3.09MB
"""


@pytest.mark.parametrize(("p99", "expected_ms"), [("10.40ms", 10.4), ("812.00us", 0.812), ("1.20s", 1200.0)])
def test_rate_and_p99_in_milliseconds(p99, expected_ms):
    found = wrk_figures(WRK.format(p99=p99, errors=""))
    assert (found.requests_per_second, found.p99_ms, found.failed) == (596.29, pytest.approx(expected_ms), 0)


def test_socket_errors_and_bad_statuses_are_failures():
    errors = "  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\n"
    assert wrk_figures(WRK.format(p99="10.40ms", errors=errors)).failed == 10


def test_output_without_a_latency_distribution_is_an_error():
    with pytest.raises(LabError, match="no rate or p99"):
        wrk_figures("unable to connect to 10.213.0.11:80 Connection refused\n")


def test_the_render_benchmark_numbers_node_ports_as_the_api_server_would():
    from bench import _render
    objects = _render.cluster_objects(_render.QUICK)
    ports = [p["nodePort"] for s in objects["services"] if s["spec"]["type"] == "NodePort" for p in s["spec"]["ports"]]
    assert ports == list(range(30000, 30000 + len(ports))) and len(ports) == _render.QUICK.node_port_services
    assert not any("nodePort" in p for s in objects["services"] if s["spec"]["type"] == "ClusterIP" for p in s["spec"]["ports"])
