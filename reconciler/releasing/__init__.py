"""The Helm release: the pyhelm3 adapter, chart values, pre-flight checks, hooks, drift."""
