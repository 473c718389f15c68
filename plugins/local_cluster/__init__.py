"""The `local` cluster provider: a real single-node Kubernetes built from upstream sources.

See ``provider.LocalClusterProvider``; the shell scripts in ``scripts/`` do the work and
the templates in ``config/`` are what they render.
"""
