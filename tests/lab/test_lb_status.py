"""Status write-back against the lab: k8sedge.lb.lb_status with the status writer's token
(docs/rbac-status.yaml, loaded by the lab's API server) puts the default pool's VIPs into
default/local-web's status (a LoadBalancer of class lb.k8sedge.io/edge), so `kubectl get svc`
shows them as EXTERNAL-IP: check mode -> apply -> check mode -> apply, changed only the first two
times. The reader cannot write status; the writer cannot change a Service's spec.
"""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest
import yaml

from lab.topology import KUBECONFIG, KUBECONFIG_ADMIN, KUBECONFIG_STATUS, KUBECTL, REPO
from tests.lab.conftest import kubectl

pytestmark = pytest.mark.usefixtures("lab")

VIPS = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())["k8sedge_pool_vips"]
PLAYBOOK = textwrap.dedent("""\
    - name: Publish the VIPs four times, then try with the reader's token
      hosts: localhost
      gather_facts: false
      vars:
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
      tasks:
        - name: Read the model
          k8sedge.lb.edge_info:
            kubeconfig: "{{ reader }}"
          register: edge
        - name: Publish
          k8sedge.lb.lb_status:
            kubeconfig: "{{ writer }}"
            model: "{{ edge.model }}"
            pool_vips: "{{ vips }}"
          check_mode: "{{ item in ['check', 'check again'] }}"
          register: published
          loop: [check, apply, check again, apply again]
        - name: Publish with the reader's token
          k8sedge.lb.lb_status:
            kubeconfig: "{{ reader }}"
            model: "{{ edge.model }}"
            pool_vips: {default: [10.213.0.219]}
          register: refused
          failed_when: false
        - name: Keep what each step said
          ansible.builtin.copy:
            content: "{{ {'published': published.results, 'refused': refused} | to_json }}"
            dest: "{{ out }}"
            mode: "0600"
    """)


def external_ip(name: str) -> str:
    return kubectl("get", "service", name, "--no-headers", "-o", "custom-columns=IP:.status.loadBalancer.ingress[*].ip").stdout.strip()


def test_the_vips_show_as_external_ip_and_only_the_status_writer_may_write_them(tmp_path):
    # The write-back is opt-in: start from a Service without any address.
    kubectl("patch", "service", "local-web", "--subresource=status", "--type=merge", "-p", '{"status":{"loadBalancer":{"ingress":null}}}')
    assert external_ip("local-web") == "<none>"
    playbook, out = tmp_path / "publish.yml", tmp_path / "out.json"
    playbook.write_text(PLAYBOOK)
    extra = {"reader": str(KUBECONFIG), "writer": str(KUBECONFIG_STATUS), "vips": VIPS, "out": str(out)}
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(extra)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    steps = json.loads(out.read_text())
    assert [step["changed"] for step in steps["published"]] == [True, True, False, False]
    (web,) = [s for s in steps["published"][1]["services"] if s["name"] == "local-web"]
    assert (web["before"], web["after"], web["reason"]) == ([], [{"ip": v} for v in VIPS["default"]], "served by pool default")
    assert external_ip("local-web") == ",".join(VIPS["default"])
    table = subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_ADMIN}", "get", "svc", "local-web"], capture_output=True, text=True,
                           timeout=60, check=True).stdout
    assert table.splitlines()[1].split()[3] == ",".join(VIPS["default"])  # the EXTERNAL-IP column

    assert "403" in steps["refused"].get("msg", "") and "services/status" in steps["refused"]["msg"], steps["refused"]
    assert external_ip("local-web") == ",".join(VIPS["default"])
    spec = subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_STATUS}", "annotate", "service", "local-web", "k8sedge-test=x"],
                          capture_output=True, text=True, timeout=60)
    assert spec.returncode != 0 and "forbidden" in spec.stderr.lower()
