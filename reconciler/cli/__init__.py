"""The ``lumina-reconcile`` command line and the wiring of adapters for it."""
