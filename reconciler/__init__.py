"""Lumina GitOps: keep the Lumina Todo stack on Kubernetes equal to its git repository.

The package reads as the flow of data: settings → plugins → watching → planning →
building → releasing → rollout → status, one module per step.
"""

__version__ = "0.1.0"
