"""The watch core (module_utils/_watch.py) against the lab API server on loopback (no VMs).

Each test starts a server of its own, with the watch-cache size and bookmark interval it needs,
writes Services, EndpointSlices and Nodes as the cluster's controllers would, and reads what the
watcher emits.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils import _watch as w
from lab.testlib.apiserver import LabApi, restart_server, start_server, stop_server
from tests.lab.kubeapi_fixtures import client_for

NODE_IP = "10.213.0.21"


@contextmanager
def api_server(tmp_path, *extra: str) -> Iterator[tuple[LabApi, list]]:
    """A server and the admin client; procs[0] is the running server process (tests restart it)."""
    proc, api = start_server(tmp_path, *extra)
    procs = [proc]
    admin = client_for(api, api.admin_token)
    try:
        yield api, [procs, admin]
    finally:
        admin.close()
        if procs[0].poll() is None:
            stop_server(procs[0])


class Running:
    """A watcher in a thread and the changes it emitted."""

    def __init__(self, watcher: w.Watcher) -> None:
        self.watcher = watcher
        self.changes: queue.Queue[w.Change] = queue.Queue()
        self.thread = threading.Thread(target=watcher.run, args=(self.changes.put,), daemon=True)

    def next(self, timeout: float = 15) -> w.Change:
        return self.changes.get(timeout=timeout)

    def none_within(self, seconds: float) -> bool:
        try:
            change = self.changes.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected change: {change.summary}")


@contextmanager
def watching(api: LabApi, **options) -> Iterator[Running]:
    params = w.params_with_defaults({"host": api.url, "api_key": api.reader_token, "ca_cert": str(api.ca),
                                     **options.pop("params", {})}, {})
    running = Running(w.Watcher(params, w.WatchOptions(**options)))
    running.thread.start()
    try:
        yield running
    finally:
        running.watcher.stop()
        running.thread.join(timeout=10)
        assert not running.thread.is_alive(), "the watcher did not stop"


# --- the cluster, written as its controllers would ----------------------------------------

def _core(admin):
    from kubernetes import client
    return client.CoreV1Api(admin)


def _discovery(admin):
    from kubernetes import client
    return client.DiscoveryV1Api(admin)


def add_node(admin, name: str = "node-a", address: str = NODE_IP) -> None:
    _core(admin).create_node({"metadata": {"name": name},
                              "spec": {"podCIDR": "10.244.1.0/24"},
                              "status": {"addresses": [{"type": "InternalIP", "address": address}],
                                         "conditions": [{"type": "Ready", "status": "True"}]}})


def add_service(admin, name: str, host: str, labels: dict | None = None) -> None:
    _core(admin).create_namespaced_service("default", {
        "metadata": {"name": name, "labels": labels or {},
                     "annotations": {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": host,
                                     "lb.k8sedge.io/backend": "pod"}},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": name}}})


def slice_body(service: str, addresses: list[str]) -> dict:
    return {"metadata": {"name": f"{service}-slice", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": "node-a"} for a in addresses]}


def set_endpoints(admin, service: str, addresses: list[str]) -> None:
    api = _discovery(admin)
    try:
        api.replace_namespaced_endpoint_slice(f"{service}-slice", "default", slice_body(service, addresses))
    except Exception as err:  # not there yet: create it
        if getattr(err, "status", None) != 404:
            raise
        api.create_namespaced_endpoint_slice("default", slice_body(service, addresses))


def targets(change: w.Change, service: str) -> list[str]:
    backend = next(b for b in change.model["backends"] if b["service"] == service)
    return [t["address"] for t in backend["targets"]]


def seed(admin) -> None:
    add_node(admin)
    add_service(admin, "web", "web.test")
    set_endpoints(admin, "web", ["10.244.1.5"])


# --- tests --------------------------------------------------------------------------------

def test_first_model_then_endpoint_only_then_structural(tmp_path):
    with api_server(tmp_path) as (api, (_procs, admin)):
        seed(admin)
        with watching(api) as running:
            first = running.next()
            assert first.kind == w.STRUCTURAL and first.previous is None
            assert targets(first, "web") == ["10.244.1.5"]

            set_endpoints(admin, "web", ["10.244.1.5", "10.244.1.6"])
            scaled = running.next()
            assert (scaled.kind, scaled.parts, scaled.backends) == (w.ENDPOINTS, (), ("default_web_80",))
            assert scaled.previous == first.generation
            assert targets(scaled, "web") == ["10.244.1.5", "10.244.1.6"]
            assert scaled.event()["change"] == "endpoints" and scaled.event()["counts"]["targets"] == 2

            add_service(admin, "shop", "shop.test")
            added = running.next()
            assert added.kind == w.STRUCTURAL and "frontends" in added.parts and "backends" in added.parts

            # A change the model does not see (an unexposed Service) emits nothing.
            _core(admin).create_namespaced_service("default", {"metadata": {"name": "quiet"}, "spec": {"ports": [{"port": 81}]}})
            assert running.none_within(1.5)
            assert running.watcher.stats["builds"] >= 4


def test_a_burst_of_changes_is_one_event(tmp_path):
    with api_server(tmp_path) as (api, (_procs, admin)):
        seed(admin)
        with watching(api, debounce=0.8, max_delay=5.0) as running:
            running.next()
            for last in range(6, 11):
                set_endpoints(admin, "web", [f"10.244.1.{i}" for i in range(5, last + 1)])
            change = running.next()
            assert change.kind == w.ENDPOINTS
            assert sorted(targets(change, "web")) == sorted(f"10.244.1.{i}" for i in range(5, 11))
            assert running.none_within(2.0)
            assert running.watcher.stats["events"] >= 5


def test_max_delay_emits_during_a_change_that_never_pauses(tmp_path):
    with api_server(tmp_path) as (api, (_procs, admin)):
        seed(admin)
        with watching(api, debounce=1.0, max_delay=1.2) as running:
            running.next()
            emitted = []
            started = time.monotonic()
            last = 5
            # A change every 0.3 s for 4 s: the quiet window never comes, max_delay must.
            while time.monotonic() - started < 4.0:
                last += 1
                set_endpoints(admin, "web", [f"10.244.1.{i}" for i in range(5, last + 1)])
                time.sleep(0.3)
                while not running.changes.empty():
                    emitted.append(running.next())
            assert len(emitted) >= 2, [c.summary for c in emitted]
            assert all(c.kind == w.ENDPOINTS for c in emitted)


def test_410_gone_relists_and_the_watch_goes_on(tmp_path):
    # A watch of labelled Services sees none of the churn below; with a 3-event history and no
    # bookmarks, its resourceVersion is compacted away before it resumes (timeoutSeconds=1).
    with api_server(tmp_path, "--watch-cache-size", "3", "--bookmark-interval", "3600") as (api, (_procs, admin)):
        seed(admin)
        with watching(api, watch_seconds=1, params={"label_selector": "edge=yes"}) as running:
            running.next()
            lists = running.watcher.stats["lists"]
            for index in range(8):
                _core(admin).create_namespaced_service("default", {"metadata": {"name": f"churn{index}"},
                                                                   "spec": {"ports": [{"port": 80}]}})
            # The expiry is counted before the relist it causes: wait for both.
            deadline = time.monotonic() + 10
            stats = running.watcher.stats
            while not (stats["expired"] >= 1 and stats["lists"] > lists) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert stats["expired"] >= 1, stats
            assert stats["lists"] > lists, stats
            add_service(admin, "labelled", "labelled.test", labels={"edge": "yes"})
            change = running.next()
            assert change.kind == w.STRUCTURAL
            assert {f["name"] for f in change.model["frontends"]} == {"default-http-80"}
            assert [r["host"] for r in change.model["frontends"][0]["routes"]] == ["labelled.test"]


def test_bookmarks_keep_a_quiet_watch_resumable(tmp_path):
    # The same churn with bookmarks every 0.2 s: the watch resumes from a bookmark, never 410.
    with api_server(tmp_path, "--watch-cache-size", "3", "--bookmark-interval", "0.2") as (api, (_procs, admin)):
        seed(admin)
        with watching(api, watch_seconds=1, params={"label_selector": "edge=yes"}) as running:
            running.next()
            for index in range(8):
                _core(admin).create_namespaced_service("default", {"metadata": {"name": f"churn{index}"},
                                                                   "spec": {"ports": [{"port": 80}]}})
                time.sleep(0.3)
            # Every stream resumes at least once after the churn: that resume is where a 410 would come.
            stats = running.watcher.stats
            resumed = stats["watches"] + len(running.watcher.streams)
            deadline = time.monotonic() + 10
            while stats["watches"] < resumed and time.monotonic() < deadline:
                time.sleep(0.1)
            assert stats["watches"] >= resumed, stats
            assert stats["bookmarks"] > 0
            assert stats["expired"] == 0
            assert stats["lists"] == len(running.watcher.streams)


def test_an_api_outage_is_logged_and_caught_up(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="k8sedge.watch")
    with api_server(tmp_path) as (api, (procs, admin)):
        seed(admin)
        with watching(api, backoff_initial=0.2, backoff_max=1.0) as running:
            first = running.next()
            assert stop_server(procs[0]) == 0
            deadline = time.monotonic() + 10
            while running.watcher.reachable and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not running.watcher.reachable
            assert running.none_within(1.5)  # nothing is built from an unreachable API
            outage = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
            assert len(outage) == 1 and f"keep serving what they have, generation {first.generation[:12]}" in outage[0]

            # The API comes back (a new one: empty store, the same address and CA) with other content.
            procs[0] = restart_server(api)
            add_node(admin)
            add_service(admin, "after", "after.test")
            set_endpoints(admin, "after", ["10.244.1.9"])
            caught_up = []
            # Builds may catch the restarted API half-written; the last one must have it all.
            while not caught_up or not any(b["service"] == "after" and b["targets"] for b in caught_up[-1].model["backends"]):
                caught_up.append(running.next(timeout=20))
            assert caught_up[0].kind == w.STRUCTURAL and caught_up[0].previous == first.generation
            assert [f["routes"][0]["host"] for f in caught_up[-1].model["frontends"]] == ["after.test"]
            assert targets(caught_up[-1], "after") == ["10.244.1.9"]
            deadline = time.monotonic() + 10
            while not running.watcher.reachable and time.monotonic() < deadline:
                time.sleep(0.1)
            assert running.watcher.reachable
            assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_the_watcher_starts_while_the_api_is_down_and_waits_for_it(tmp_path):
    with api_server(tmp_path) as (api, (procs, admin)):
        seed(admin)
        stop_server(procs[0])
        with watching(api, backoff_initial=0.2, backoff_max=1.0) as running:
            assert running.none_within(1.5)
            assert not running.watcher.reachable
            procs[0] = restart_server(api)
            seed(admin)
            change = running.next(timeout=20)
            while targets(change, "web") != ["10.244.1.5"]:
                change = running.next(timeout=20)
            assert change.previous is None or change.kind in (w.STRUCTURAL, w.ENDPOINTS)


def test_the_model_equals_edge_info_s(tmp_path):
    from ansible_collections.k8sedge.lb.plugins.module_utils._edge_info import model_of, read_state

    with api_server(tmp_path) as (api, (_procs, admin)):
        seed(admin)
        add_service(admin, "shop", "shop.test")
        with watching(api) as running:
            change = running.next()
        params = w.params_with_defaults({"host": api.url, "api_key": api.reader_token, "ca_cert": str(api.ca)}, {})
        state, read = read_state(params)
        assert change.generation == model_of(state, params, None, read)["generation"]


def test_credentials_from_awx_s_environment_variables(tmp_path):
    with api_server(tmp_path) as (api, (_procs, admin)):
        seed(admin)
        env = {"K8S_AUTH_HOST": api.url, "K8S_AUTH_API_KEY": api.reader_token,
               "K8S_AUTH_SSL_CA_CERT": str(api.ca), "K8S_AUTH_VERIFY_SSL": "true"}
        params = w.params_with_defaults({}, env)
        assert (params["host"], params["validate_certs"]) == (api.url, True)
        running = Running(w.Watcher(params, w.WatchOptions()))
        running.thread.start()
        try:
            assert targets(running.next(), "web") == ["10.244.1.5"]
        finally:
            running.watcher.stop()
            running.thread.join(timeout=10)


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="option max_delay"):
        w.WatchOptions(debounce=2, max_delay=1)
    with pytest.raises(ValueError, match="unknown option.*colour"):
        w.params_with_defaults({"colour": "blue"}, {})
    with pytest.raises(ValueError, match="option validate_certs"):
        w.params_with_defaults({}, {"K8S_AUTH_VERIFY_SSL": "maybe"})
