# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every plugin that reads the Kubernetes API."""

from __future__ import annotations


class ModuleDocFragment:
    # Names and environment variables follow kubernetes.core, so operators' habits and
    # AWX's Kubernetes credential type carry over unchanged.
    DOCUMENTATION = r"""
requirements:
  - kubernetes (the Python client), to read the Kubernetes API
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - When neither O(kubeconfig) nor O(host) is given, kubectl's defaults apply
        (C(KUBECONFIG), its files merged, then C(~/.kube/config), then the in-cluster service account).
      - The kubernetes Python client reads it as kubectl would, with tokens, C(tokenFile), client certificates,
        exec credential plugins, C(auth-provider), C(tls-server-name), C(proxy-url).
      - Credentials that can change (an exec plugin's token, a token file) are read again when the API
        server answers 401, and the request is retried once.
      - Can also be set with the C(K8S_AUTH_KUBECONFIG) environment variable.
    type: path
  context:
    description:
      - The kubeconfig context to use.
      - Can also be set with the C(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, used instead of a kubeconfig.
      - Can also be set with the C(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token to authenticate with, used with O(host).
      - Can also be set with the C(K8S_AUTH_API_KEY) environment variable.
    type: str
  ca_cert:
    description:
      - Path to a CA certificate that signs the API server's certificate.
      - Can also be set with the C(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ ssl_ca_cert ]
  client_cert:
    description:
      - Path to a certificate to authenticate with, instead of the kubeconfig's.
      - Can also be set with the C(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [ cert_file ]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - Can also be set with the C(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [ key_file ]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with the C(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    default: true
    aliases: [ verify_ssl ]
"""

    # Plugins (inventory, lookup) take the same options; their configuration system reads the
    # environment itself, so the variables are declared rather than described.
    PLUGIN = r"""
requirements:
  - kubernetes (the Python client), to read the Kubernetes API
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - When neither O(kubeconfig) nor O(host) is given, kubectl's defaults apply
        (C(KUBECONFIG), its files merged, then C(~/.kube/config), then the in-cluster service account).
      - The kubernetes Python client reads it as kubectl would, with tokens, C(tokenFile), client certificates,
        exec credential plugins, C(auth-provider), C(tls-server-name), C(proxy-url).
      - Credentials that can change (an exec plugin's token, a token file) are read again when the API
        server answers 401, and the request is retried once.
    type: path
    env:
      - name: K8S_AUTH_KUBECONFIG
  context:
    description: The kubeconfig context to use.
    type: str
    env:
      - name: K8S_AUTH_CONTEXT
  host:
    description: URL of the Kubernetes API server, used instead of a kubeconfig.
    type: str
    env:
      - name: K8S_AUTH_HOST
  api_key:
    description: Bearer token to authenticate with, used with O(host).
    type: str
    env:
      - name: K8S_AUTH_API_KEY
  ca_cert:
    description: Path to a CA certificate that signs the API server's certificate.
    type: path
    aliases: [ ssl_ca_cert ]
    env:
      - name: K8S_AUTH_SSL_CA_CERT
  client_cert:
    description: Path to a certificate to authenticate with, instead of the kubeconfig's.
    type: path
    aliases: [ cert_file ]
    env:
      - name: K8S_AUTH_CERT_FILE
  client_key:
    description: Path to the key of O(client_cert).
    type: path
    aliases: [ key_file ]
    env:
      - name: K8S_AUTH_KEY_FILE
  validate_certs:
    description: Whether to verify the API server's TLS certificate.
    type: bool
    default: true
    aliases: [ verify_ssl ]
    env:
      - name: K8S_AUTH_VERIFY_SSL
"""
