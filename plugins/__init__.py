"""Built-in plugins: the three Lumina Todo services and the cluster providers.

They are registered in ``pyproject.toml`` through the same entry-point groups a
third-party plugin uses, so nothing in the core knows them by name.
"""
