"""An edge_nginx release written in one step: only what differs, keys 0600 in a 0700 directory,
nothing outside the release directory."""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._files import TreeError
from ansible_collections.k8sedge.lb.plugins.module_utils._nginx_release import contents, pending, relocated, write

PAIR = {"cert": "-----CERT-----\n", "key": "-----KEY-----\n"}


def test_a_release_is_written_once_and_then_left_alone(tmp_path):
    dest = str(tmp_path / "releases" / "0123")
    tree = contents({"nginx.conf": "events {}\n", "http.conf": "\n"}, {"web": PAIR})
    assert pending(dest, tree) == ["certs/web.crt", "certs/web.key", "http.conf", "nginx.conf"]
    write(dest, tree, pending(dest, tree))
    assert pending(dest, tree) == []
    assert (tmp_path / "releases" / "0123" / "certs" / "web.key").read_text() == PAIR["key"]
    assert stat.S_IMODE(os.stat(tmp_path / "releases" / "0123" / "certs").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "releases" / "0123" / "certs" / "web.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "releases" / "0123" / "certs" / "web.crt").st_mode) == 0o644
    (tmp_path / "releases" / "0123" / "nginx.conf").write_text("changed by hand\n")
    assert pending(dest, tree) == ["nginx.conf"]


@pytest.mark.parametrize("files, certificates", [
    ({"../nginx.conf": ""}, {}), ({"/etc/passwd": ""}, {}), ({"sub/x.conf": ""}, {}), ({".hidden": ""}, {}),
    ({"certs/../../x": ""}, {}), ({}, {"../web": PAIR}), ({}, {"web": {"cert": "only"}}), ({"nginx.conf": 1}, {}),
])
def test_what_does_not_belong_in_a_release_is_refused(files, certificates):
    with pytest.raises(TreeError, match="expected"):
        contents(files, certificates)


def test_a_release_relocated_names_its_new_directory_only():
    tree = contents({"nginx.conf": "include /etc/nginx/k8sedge/releases/0123/http.conf;\n"}, {"web": PAIR})
    moved = relocated(tree, "/etc/nginx/k8sedge/releases/0123/", "/tmp/scratch")
    assert moved["nginx.conf"] == (b"include /tmp/scratch/http.conf;\n", 0o644)
    assert moved["certs/web.key"] == tree["certs/web.key"]
