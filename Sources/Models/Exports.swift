// Models are added in this target.
@_exported import Layers
