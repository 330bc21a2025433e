import Engine

/// How one procedurally generated task draws a scene for a given label.
struct StructuredTaskRecipe: Sendable {
    /// Registry name, also salting every seed.
    var name: String
    var summary: String
    var classNames: [String]
    var horizontalFlipPreservesLabel: Bool
    /// Draws a scene of class `label`; everything random comes from `generator`.
    var scene: @Sendable (_ label: Int, _ generator: inout RandomGenerator) -> GreyScene
}

/// Builds the splits of a procedurally generated task. Image `i` of a split is a pure function of (task, split
/// seed, i): its label comes from a balanced, shuffled label list and its scene from a generator seeded with
/// those three. The test set (1,000 images, balanced) uses a fixed split seed; train and validation use one
/// derived from the task seed, so they are drawn afresh for every seed and never from the test stream.
enum StructuredTaskBuilder {
    static let side = 32
    static let testCount = 1_000
    /// Background levels, shape grey levels and noise shared by the structured tasks.
    static let backgroundRange: ClosedRange<Double> = 0.0...0.2
    static let brightnessRange: ClosedRange<Double> = 0.65...1.0
    static let noiseAmplitude: Float = 0.03

    static func build(_ recipe: StructuredTaskRecipe, seed: UInt64) -> ImageClassificationTask {
        let classCount = recipe.classNames.count
        let testQuotas = BalancedDraw.quotas(total: testCount, classCount: classCount)
        let trainQuotas = BalancedDraw.quotas(total: TaskRegistry.trainCount, classCount: classCount)
        let validationQuotas = BalancedDraw.quotas(total: TaskRegistry.validationCount, classCount: classCount)

        let testSeed = TaskRandomness.seed(task: recipe.name, purpose: "test")
        let poolSeed = TaskRandomness.seed(task: recipe.name, purpose: "train-validation", seed)
        var taken = Set<[Float]>()
        let test = generate(recipe, splitSeed: testSeed, labels: shuffledLabels(testQuotas, seed: testSeed), taken: &taken)
        let poolLabels = shuffledLabels(trainQuotas, seed: poolSeed) + shuffledLabels(validationQuotas, seed: poolSeed &+ 1)
        let pool = generate(recipe, splitSeed: poolSeed, labels: poolLabels, taken: &taken)
        let trainCount = TaskRegistry.trainCount
        return ImageClassificationTask(
            name: recipe.name, summary: recipe.summary, classNames: recipe.classNames, rows: side, columns: side,
            horizontalFlipPreservesLabel: recipe.horizontalFlipPreservesLabel,
            train: ImageSplit(images: Array(pool.images[..<trainCount]), labels: Array(pool.labels[..<trainCount])),
            validation: ImageSplit(images: Array(pool.images[trainCount...]), labels: Array(pool.labels[trainCount...])),
            test: test)
    }

    /// Each class repeated by its quota, shuffled.
    private static func shuffledLabels(_ quotas: [Int], seed: UInt64) -> [Int] {
        var labels = quotas.enumerated().flatMap { [Int](repeating: $0.offset, count: $0.element) }
        var generator = RandomGenerator(seed: seed ^ 0x6C61_6265_6C73)
        generator.taskShuffle(&labels)
        return labels
    }

    /// Renders image `i` of the split for each label (in parallel). An image identical to one already in
    /// `taken` (vanishingly unlikely) is redrawn with the next attempt number, so splits never share images.
    private static func generate(_ recipe: StructuredTaskRecipe, splitSeed: UInt64, labels: [Int],
                                 taken: inout Set<[Float]>) -> ImageSplit {
        func image(_ index: Int, attempt: UInt64) -> [Float] {
            var generator = RandomGenerator(seed: TaskRandomness.seed(task: recipe.name, purpose: "image",
                                                                      splitSeed, UInt64(index) &+ attempt << 32))
            return recipe.scene(labels[index], &generator).render()
        }
        let images = [[Float]](unsafeUninitializedCapacity: labels.count) { buffer, initialised in
            let base = buffer.baseAddress!
            // Each index writes its own element; the call returns when all are written.
            Parallel.forEachChunk(labels.count, grain: 1) { range in
                for index in range { (base + index).initialize(to: image(index, attempt: 0)) }
            }
            initialised = labels.count
        }
        var unique = images
        for index in unique.indices {
            var attempt: UInt64 = 0
            while !taken.insert(unique[index]).inserted {
                attempt += 1
                unique[index] = image(index, attempt: attempt)
            }
        }
        return ImageSplit(images: unique, labels: labels)
    }

    /// A uniformly drawn background level, noise seed and empty scene of the task size.
    static func emptyScene(_ generator: inout RandomGenerator) -> GreyScene {
        GreyScene(rows: side, columns: side, background: Float(generator.taskUniform(backgroundRange)),
                  noiseAmplitude: noiseAmplitude, noiseSeed: generator.next(), shapes: [])
    }

    /// A random fill level.
    static func brightness(_ generator: inout RandomGenerator) -> Float {
        Float(generator.taskUniform(brightnessRange))
    }

    /// One of square, ellipse or equilateral triangle with a random aspect (ellipses) and rotation, centred at
    /// (x, y) with circumradius `size`.
    static func randomPlainShape(x: Double, y: Double, size: Double, _ generator: inout RandomGenerator) -> SceneShape {
        let kinds: [SceneShapeKind] = [.square, .ellipse, .triangle]
        let kind = kinds[generator.taskIndex(below: kinds.count)]
        let aspect = kind == .ellipse ? generator.taskUniform(0.5...0.9) : 1
        let orientation = generator.taskUniform(0...(2 * Double.pi))
        return SceneShape(kind: kind, centreX: x, centreY: y, size: size, aspect: aspect, orientation: orientation,
                          brightness: brightness(&generator))
    }
}
