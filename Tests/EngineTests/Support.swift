// The shared test helpers (finite differences, comparisons) for every file of this target.
@_exported import TestSupport
