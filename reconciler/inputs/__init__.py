"""What the repository says: watching it, reading git and the work tree, digests, snapshots."""
