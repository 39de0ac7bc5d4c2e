# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The errors k8sedge tells a user about: one base per layer of the data flow.

    read (the cluster API, kubeconfig, manifests) -> model -> view -> apply -> probe

A layer raises its own base or a subclass of it, with a message that names the object, the field
and what was expected. The edges catch EdgeError once: a module's main() turns it into
fail_json, a filter into AnsibleFilterError, the inventory's parse() into AnsibleParserError.
Nothing catches TypeError, KeyError or AttributeError to turn it into a message: those are bugs,
and a bug stays a traceback.
"""

from __future__ import annotations

__all__ = ["ApplyError", "EdgeError", "ModelError", "ProbeError", "ReadError", "ViewError"]


class EdgeError(Exception):
    """Something k8sedge refuses or cannot do, said so that the user can act on it."""


class ReadError(EdgeError):
    """The cluster, its kubeconfig or the manifests could not be read completely."""


class ModelError(EdgeError, ValueError):
    """A value outside its grammar, a model option refused, or a document that is not the model."""


class ViewError(EdgeError, ValueError):
    """A model or an option an engine's view refuses."""


class ApplyError(EdgeError):
    """A change on an edge host or in the cluster's status that could not be made."""


class ProbeError(EdgeError):
    """Probes or reports that cannot be derived from what they were given."""
