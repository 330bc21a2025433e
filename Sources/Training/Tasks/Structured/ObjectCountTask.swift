import Engine

/// `count-1k` (in the spirit of CLEVR counting): 1 to 6 squares, ellipses and triangles of random kinds, sizes,
/// rotations and grey levels, placed so that they neither overlap nor touch (at least 2.5 pixels apart);
/// the label is the count minus one.
enum ObjectCountTask {
    static let name = "count-1k"
    static let maximumCount = 6
    static let sizeRange: ClosedRange<Double> = 2.75...4.75
    static let smallestSize = 2.5
    static let gap = 2.5
    static let edgeMargin = 0.5

    static let classNames = (1...maximumCount).map { $0 == 1 ? "1 object" : "\($0) objects" }

    static let recipe = StructuredTaskRecipe(
        name: name,
        summary: "Procedural 32x32 grey scenes of 1-6 non-touching squares/ellipses/triangles (random kinds, sizes, rotations, grey levels, positions); label = count - 1 (CLEVR-count-like); 800 train + 200 val (balanced, seeded), test 1,000 (balanced, fixed)",
        classNames: classNames, horizontalFlipPreservesLabel: true) { label, generator in
            var scene = StructuredTaskBuilder.emptyScene(&generator)
            scene.shapes = place(count: label + 1, &generator)
            return scene
        }

    /// Random non-touching shapes. A shape that finds no free spot in 100 tries is shrunk and retried; sizes
    /// never go below ``smallestSize``, where six shapes always fit on a 32x32 canvas within a few tries.
    static func place(count: Int, _ generator: inout RandomGenerator) -> [SceneShape] {
        let side = Double(StructuredTaskBuilder.side)
        var shapes: [SceneShape] = []
        while shapes.count < count {
            var size = generator.taskUniform(sizeRange)
            var placed = false
            while !placed {
                for _ in 0..<100 {
                    let low = size + edgeMargin, high = side - size - edgeMargin
                    let x = generator.taskUniform(low...high), y = generator.taskUniform(low...high)
                    let free = shapes.allSatisfy { other in
                        let dx = other.centreX - x, dy = other.centreY - y
                        let distance = other.boundingRadius + size + gap
                        return dx * dx + dy * dy >= distance * distance
                    }
                    if free {
                        shapes.append(StructuredTaskBuilder.randomPlainShape(x: x, y: y, size: size, &generator))
                        placed = true
                        break
                    }
                }
                if !placed {
                    if size > smallestSize {
                        size = max(smallestSize, size * 0.85)
                    } else {
                        // Start again: earlier shapes left no room (bounded: each restart is a fresh draw).
                        shapes.removeAll()
                        break
                    }
                }
            }
        }
        return shapes
    }
}
