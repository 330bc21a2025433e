import Engine

/// `shapes-ori-1k` (in the spirit of dSprites orientation): one slender isosceles triangle of random height,
/// width, grey level and position; the label is the direction its apex points in, in 8 bins of 45 degrees
/// centred on 0 (right), 45, 90 (up), ... 315 degrees, counter-clockwise as seen on screen.
enum ShapesOrientationTask {
    static let name = "shapes-ori-1k"
    static let binCount = 8
    static let heightRange: ClosedRange<Double> = 10.0...20.0
    static let aspectRange: ClosedRange<Double> = 0.35...0.6

    static let classNames = ["0° (right)", "45° (up-right)", "90° (up)", "135° (up-left)", "180° (left)",
                             "225° (down-left)", "270° (down)", "315° (down-right)"]

    static let recipe = StructuredTaskRecipe(
        name: name,
        summary: "Procedural 32x32 grey scenes of one slender isosceles triangle (random height 10-20 px, width, grey level, position); label = direction of its apex in 8 bins of 45 degrees (dSprites-like orientation); 800 train + 200 val (balanced, seeded), test 1,000 (balanced, fixed)",
        classNames: classNames, horizontalFlipPreservesLabel: false) { label, generator in
            var scene = StructuredTaskBuilder.emptyScene(&generator)
            let binAngle = Double.pi / 4
            let angle = (Double(label) + generator.taskUniform(-0.5...0.5)) * binAngle
            var shape = SceneShape(kind: .isoscelesTriangle, centreX: 0, centreY: 0,
                                   size: generator.taskUniform(heightRange), aspect: generator.taskUniform(aspectRange),
                                   orientation: angle, brightness: StructuredTaskBuilder.brightness(&generator))
            let side = Double(StructuredTaskBuilder.side)
            let reach = shape.boundingRadius + 0.5
            shape.centreX = generator.taskUniform(reach...(side - reach))
            shape.centreY = generator.taskUniform(reach...(side - reach))
            scene.shapes = [shape]
            return scene
        }
}
