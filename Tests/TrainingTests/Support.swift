// The shared test helpers (finite differences, the tiny ViT) for every file of this target.
@_exported import TestSupport
