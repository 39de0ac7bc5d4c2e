"""Fixtures for the kubeapi tests: the lab API server (lab/testlib/apiserver.py) with a fresh CA,
and its clients.

Test modules import the fixtures they use from here (conftest.py belongs to the lead).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from lab.testlib.apiserver import LabApi, start_server, stop_server
from lab.topology import REPO

KUBECTL = str(REPO / ".venv" / "bin" / "kubectl")


def client_for(api: LabApi, token: str):  # -> kubernetes.client.ApiClient
    from kubernetes import client

    config = client.Configuration()
    config.host = api.url
    config.ssl_ca_cert = str(api.ca)
    config.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(config)


@pytest.fixture(scope="module")
def kubeapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabApi]:
    workdir = tmp_path_factory.mktemp("kubeapi")
    proc, api = start_server(workdir, "--watch-cache-size", "300", "--bookmark-interval", "0.2",
                             "--list-snapshots", "4")
    yield api
    assert stop_server(proc) == 0, "kubeapi did not exit cleanly on SIGTERM"


@pytest.fixture(scope="module")
def admin(kubeapi: LabApi):
    api_client = client_for(kubeapi, kubeapi.admin_token)
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def reader(kubeapi: LabApi):
    api_client = client_for(kubeapi, kubeapi.reader_token)
    yield api_client
    api_client.close()


def kubectl(api: LabApi, *args: str, kubeconfig: Path | None = None, timeout: float = 20,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig or api.admin_kubeconfig), HOME=str(api.ca.parent))
    result = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result
