"""`make bench`: k8sedge measured side by side with what users would use instead (harness.py)."""
