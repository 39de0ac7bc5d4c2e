"""The lab's fixed shape: hosts, addresses and where generated files live.

Every other lab module and the inventory in inventory/lab/ take their names and
addresses from here, so the lab has one source of truth for its layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
KUBECTL = REPO / ".venv" / "bin" / "kubectl"

# Everything the lab generates; git-ignored.
LAB_DIR = REPO / ".lab"
CACHE_DIR = LAB_DIR / "cache"  # kept by `labctl down`: the VM image and the package mirror
RUN_DIR = LAB_DIR / "run"  # removed by `labctl down`: overlays, pid files, logs
PKI_DIR = LAB_DIR / "pki"
SSH_DIR = LAB_DIR / "ssh"
SSH_KEY = SSH_DIR / "id_ed25519"
LOGIN_USER = "k8sedge"  # the edge VMs' login user with sudo, beside root (inventory/example's ansible_user)
KNOWN_HOSTS = SSH_DIR / "known_hosts"
KUBECONFIG = LAB_DIR / "kubeconfig"  # read-only token, what the edge tooling uses
KUBECONFIG_ADMIN = LAB_DIR / "kubeconfig-admin"
KUBECONFIG_STATUS = LAB_DIR / "kubeconfig-status"  # the status writer's token (docs/rbac-status.yaml)
KUBECONFIG_GATES = LAB_DIR / "kubeconfig-gates"  # the readiness gates' writer's token (docs/rbac-gates.yaml)
TOKEN_FILE = PKI_DIR / "tokens.csv"
MANIFESTS = REPO / "lab" / "manifests"
# The model options the lab's inventory gives every reader of the model (inventory/lab): the
# design note's TCP entries live in ingress-nginx's ConfigMaps, and reading them is opt-in.
MODEL_OPTIONS = {"tcp_services_configmap": "ingress-nginx/tcp-services", "udp_services_configmap": "ingress-nginx/udp-services"}
# The API server's authorization: the roles every cluster has, and the manifests we ship.
RBAC_POLICIES = (REPO / "lab" / "rbac.yaml", REPO / "docs" / "rbac.yaml", REPO / "docs" / "rbac-status.yaml",
                 REPO / "docs" / "rbac-gates.yaml")

PREFIX = "k8sedge"
BRIDGE = "k8sedge0"
SUBNET_PREFIXLEN = 24
GATEWAY_IP = "10.213.0.1"  # the machine's own address on the lab bridge
API_PORT = 6443
MIRROR_PORT = 8081
API_URL = f"https://{GATEWAY_IP}:{API_PORT}"
MIRROR_URL = f"http://{GATEWAY_IP}:{MIRROR_PORT}"
# Reserved for keepalived VIPs; no lab host takes an address from this range.
VIP_RANGE = ("10.213.0.200", "10.213.0.219")

READER_USER = "system:serviceaccount:k8sedge:edge-reader"
STATUS_USER = "system:serviceaccount:k8sedge:edge-status"
GATES_USER = "system:serviceaccount:k8sedge:edge-gates"
ADMIN_USER = "lab-admin"


@dataclass(frozen=True)
class Host:
    name: str
    ip: str
    role: str  # "edge" (booted Debian VM), "node" (Kubernetes node), "client"
    pod_cidr: str | None = None
    zone: str | None = None
    on_demand: bool = False  # an edge VM `labctl up` leaves off: `labctl start` boots it for the tests that need it

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def veth(self) -> str:
        # Host-side end of the host's link; interface names are limited to 15 bytes.
        return f"k8s-{self.name}"[:15]

    @property
    def is_vm(self) -> bool:
        return self.role == "edge"


HOSTS: tuple[Host, ...] = (
    Host("edge1", "10.213.0.11", "edge"),
    Host("edge2", "10.213.0.12", "edge"),
    Host("edge3", "10.213.0.13", "edge", on_demand=True),  # the edge that joins the pool (tests/lab/test_vips.py)
    Host("node1", "10.213.0.21", "node", pod_cidr="10.244.1.0/24", zone="lab-a"),
    Host("node2", "10.213.0.22", "node", pod_cidr="10.244.2.0/24", zone="lab-b"),
    Host("client", "10.213.0.100", "client"),
)


def host(name: str) -> Host:
    for candidate in HOSTS:
        if candidate.name == name:
            return candidate
    known = ", ".join(h.name for h in HOSTS)
    raise KeyError(f"no lab host named {name!r}; the lab has: {known}")
