"""Images: docker builds from a tar of exactly the planned files, registries, room on disk."""
