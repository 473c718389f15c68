"""HTTP routes, one module per resource; main mounts them all under /api."""
