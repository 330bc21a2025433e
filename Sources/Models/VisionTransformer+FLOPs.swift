extension VisionTransformerConfiguration {
    /// Multiply-add FLOPs (2 per MAC) of one image's forward pass at `resolution`: patch projection, the four
    /// attention projections, the two attention products and the MLP. Norms and elementwise work are not counted.
    public func forwardFLOPs(resolution: Int) -> Double {
        let grid = resolution / patchSize
        let tokens = Double(grid * grid + 1), c = Double(width), m = Double(mlpDimension)
        let patch = 2 * Double(grid * grid) * c * Double(channels * patchSize * patchSize)
        let perBlock = 2 * tokens * (4 * c * c + 2 * c * m) + 2 * 2 * tokens * tokens * c
        return patch + Double(depth) * perBlock
    }
}
