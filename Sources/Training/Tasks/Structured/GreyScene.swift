import Engine

/// A small grey picture of filled shapes on a flat background with mild noise, drawn by an anti-aliasing
/// rasteriser: each pixel's coverage by a shape is the fraction of a 4x4 grid of sample points inside it, and
/// the shape is blended over what is below by that coverage. Rendering is a pure function of the scene.
public struct GreyScene: Sendable, Equatable {
    /// Sample points per pixel side (4 gives 16 samples per pixel).
    public static let samplesPerSide = 4

    /// Height in pixels.
    public var rows: Int
    /// Width in pixels.
    public var columns: Int
    /// Grey level of the background, in [0, 1].
    public var background: Float
    /// Largest noise added to a pixel: each gets a uniform value in [-noiseAmplitude, noiseAmplitude].
    public var noiseAmplitude: Float
    /// Seed of the per-pixel noise.
    public var noiseSeed: UInt64
    /// Shapes, drawn in order (later ones over earlier ones).
    public var shapes: [SceneShape]

    /// Creates a scene.
    public init(rows: Int, columns: Int, background: Float, noiseAmplitude: Float = 0.03, noiseSeed: UInt64 = 0,
                shapes: [SceneShape]) {
        self.rows = rows
        self.columns = columns
        self.background = background
        self.noiseAmplitude = noiseAmplitude
        self.noiseSeed = noiseSeed
        self.shapes = shapes
    }

    /// The picture, `rows * columns` values in [0, 1], row-major.
    public func render() -> [Float] {
        var pixels = [Float](repeating: background, count: rows * columns)
        let n = Self.samplesPerSide
        let offsets = (0..<n).map { (Double($0) + 0.5) / Double(n) }
        let sampleWeight = 1 / Float(n * n)
        for shape in shapes {
            let test = shape.insideTest()
            let reach = shape.boundingRadius + 1
            let firstRow = max(0, Int((shape.centreY - reach).rounded(.down)))
            let lastRow = min(rows - 1, Int((shape.centreY + reach).rounded(.up)))
            let firstColumn = max(0, Int((shape.centreX - reach).rounded(.down)))
            let lastColumn = min(columns - 1, Int((shape.centreX + reach).rounded(.up)))
            guard firstRow <= lastRow, firstColumn <= lastColumn else { continue }
            for row in firstRow...lastRow {
                for column in firstColumn...lastColumn {
                    var inside = 0
                    for dy in offsets {
                        for dx in offsets where test.contains(x: Double(column) + dx, y: Double(row) + dy) {
                            inside += 1
                        }
                    }
                    guard inside > 0 else { continue }
                    let coverage = Float(inside) * sampleWeight
                    let index = row * columns + column
                    pixels[index] += (shape.brightness - pixels[index]) * coverage
                }
            }
        }
        if noiseAmplitude > 0 {
            var generator = RandomGenerator(seed: noiseSeed)
            for index in pixels.indices {
                pixels[index] += (2 * generator.nextUniform() - 1) * noiseAmplitude
            }
        }
        for index in pixels.indices { pixels[index] = min(max(pixels[index], 0), 1) }
        return pixels
    }
}
