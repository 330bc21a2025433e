@_exported import Methods
