"""A Kubernetes API server for the lab that behaves like kube-apiserver at the HTTP level."""
