import Engine

/// `shapes-loc-1k` (in the spirit of dSprites location): one square, ellipse or triangle of random size,
/// rotation, grey level and height; the label is the horizontal bin (of 8) holding its centre. Centres range
/// over x in [6, 26) so every shape fits, giving bins 2.5 pixels wide.
enum ShapesLocationTask {
    static let name = "shapes-loc-1k"
    static let binCount = 8
    static let firstCentreX = 6.0
    static let binWidth = 2.5
    static let sizeRange: ClosedRange<Double> = 3.0...6.0

    static let classNames = (0..<binCount).map { bin in
        "x \(format(firstCentreX + Double(bin) * binWidth))-\(format(firstCentreX + Double(bin + 1) * binWidth))"
    }

    static let recipe = StructuredTaskRecipe(
        name: name,
        summary: "Procedural 32x32 grey scenes of one square/ellipse/triangle (random size, rotation, grey level, height); label = horizontal position of its centre in 8 bins of 2.5 px over x 6-26 (dSprites-like); 800 train + 200 val (balanced, seeded), test 1,000 (balanced, fixed)",
        classNames: classNames, horizontalFlipPreservesLabel: false) { label, generator in
            var scene = StructuredTaskBuilder.emptyScene(&generator)
            let size = generator.taskUniform(sizeRange)
            let low = firstCentreX + Double(label) * binWidth
            let x = generator.taskUniform(low...(low + binWidth))
            let side = Double(StructuredTaskBuilder.side)
            let y = generator.taskUniform(size...(side - size))
            scene.shapes = [StructuredTaskBuilder.randomPlainShape(x: x, y: y, size: size, &generator)]
            return scene
        }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
