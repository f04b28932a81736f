"""The kernel store: one load-or-build protocol (memory, disk, manifests, keys) for every target."""
