"""The informer cache: our own writes show at once, and late watch events never undo them."""
from __future__ import annotations

from lab.cluster._kube import Informer


def pod(rv: int, uid: str = "u1", deleting: bool = False) -> dict:
    meta = {"name": "p", "namespace": "default", "uid": uid, "resourceVersion": str(rv)}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta}


def informer() -> Informer:
    return Informer("pods", lambda **_: None, lambda: None)


def test_observed_write_is_not_undone_by_an_older_event():
    inf = informer()
    inf.observe(pod(5))
    inf.observe(pod(7, deleting=True))  # our DELETE's answer
    inf.observe(pod(6))  # a late MODIFIED from before the delete
    assert inf.get("default/p")["metadata"]["resourceVersion"] == "7"


def test_forgotten_object_is_not_revived_by_an_older_event():
    inf = informer()
    inf.observe(pod(5))
    inf.forget(pod(8))
    inf.observe(pod(6))
    assert inf.get("default/p") is None
    inf.observe(pod(9, uid="u2"))  # a new pod with the same name
    assert inf.get("default/p")["metadata"]["uid"] == "u2"


def test_forget_keeps_a_newer_object_of_the_same_name():
    inf = informer()
    inf.observe(pod(9, uid="u2"))
    inf.forget(pod(8, uid="u1"))
    assert inf.get("default/p")["metadata"]["uid"] == "u2"
