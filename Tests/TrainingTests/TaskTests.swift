import Foundation
import Training
import XCTest

/// Tests of the 1k-protocol tasks: split sizes and balance, label and pixel ranges, disjoint splits,
/// determinism and seed behaviour, the defining property of each procedurally generated task, and errors.
final class TaskTests: XCTestCase {
    static let imageTaskNames = ["fmnist-1k", "digits-1k", "shapes-loc-1k", "shapes-ori-1k", "count-1k"]

    // MARK: Loading (cached: several tests look at the same tasks)

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var imageCache: [String: ImageClassificationTask] = [:]
    nonisolated(unsafe) private static var textCache: [String: TextClassificationTask] = [:]

    private func image(_ name: String, seed: UInt64 = 0) throws -> ImageClassificationTask {
        if name == "fmnist-1k" {
            let file = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
            guard FileManager.default.fileExists(atPath: file) else {
                throw XCTSkip("Fashion-MNIST is missing (\(file)): run scripts/setup.sh")
            }
        }
        let key = "\(name)#\(seed)"
        Self.cacheLock.lock()
        defer { Self.cacheLock.unlock() }
        if let task = Self.imageCache[key] { return task }
        let task = try TaskRegistry.image(named: name, seed: seed)
        Self.imageCache[key] = task
        return task
    }

    private func text(_ name: String, seed: UInt64 = 0) throws -> TextClassificationTask {
        let key = "\(name)#\(seed)"
        Self.cacheLock.lock()
        defer { Self.cacheLock.unlock() }
        if let task = Self.textCache[key] { return task }
        let task = try TaskRegistry.text(named: name, seed: seed)
        Self.textCache[key] = task
        return task
    }

    /// `total` over `classes`, the remainder one each to the first classes.
    private func quotas(_ total: Int, _ classes: Int) -> [Int] {
        (0..<classes).map { total / classes + ($0 < total % classes ? 1 : 0) }
    }

    // MARK: Registry

    func testNamesKindsAndSummaries() throws {
        XCTAssertEqual(TaskRegistry.names, Self.imageTaskNames + ["fortunes-1k"])
        for name in Self.imageTaskNames { XCTAssertEqual(try TaskRegistry.kind(of: name), .image) }
        XCTAssertEqual(try TaskRegistry.kind(of: "fortunes-1k"), .text)
        for name in TaskRegistry.names {
            XCTAssertFalse(TaskRegistry.summary(of: name).isEmpty, name)
            XCTAssertFalse(TaskRegistry.summary(of: name).contains("unknown"), name)
        }
    }

    func testUnknownTaskNamesListTheValidOnes() {
        func check(_ body: () throws -> Void) {
            XCTAssertThrowsError(try body()) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains("no-such-task"), message)
                for name in TaskRegistry.names { XCTAssertTrue(message.contains(name), message) }
            }
        }
        check { _ = try TaskRegistry.kind(of: "no-such-task") }
        check { _ = try TaskRegistry.image(named: "no-such-task") }
        check { _ = try TaskRegistry.text(named: "no-such-task") }
        let summary = TaskRegistry.summary(of: "no-such-task")
        for name in TaskRegistry.names { XCTAssertTrue(summary.contains(name), summary) }
    }

    func testLoadingAsTheWrongKindSaysWhichKindItIs() {
        XCTAssertThrowsError(try TaskRegistry.image(named: "fortunes-1k")) { error in
            XCTAssertTrue("\(error)".contains("text task"), "\(error)")
        }
        XCTAssertThrowsError(try TaskRegistry.text(named: "digits-1k")) { error in
            XCTAssertTrue("\(error)".contains("image task"), "\(error)")
        }
    }

    // MARK: Image tasks: shape of the splits

    func testImageSplitSizesBalanceLabelsAndPixels() throws {
        let expectedSides = ["fmnist-1k": 28, "digits-1k": 8, "shapes-loc-1k": 32, "shapes-ori-1k": 32, "count-1k": 32]
        let expectedClasses = ["fmnist-1k": 10, "digits-1k": 10, "shapes-loc-1k": 8, "shapes-ori-1k": 8, "count-1k": 6]
        for name in Self.imageTaskNames {
            let task = try image(name)
            let classes = try XCTUnwrap(expectedClasses[name])
            XCTAssertEqual(task.name, name)
            XCTAssertFalse(task.summary.isEmpty)
            XCTAssertEqual(task.classNames.count, classes, name)
            XCTAssertEqual(Set(task.classNames).count, classes, "\(name): class names repeat")
            XCTAssertEqual(task.rows, expectedSides[name], name)
            XCTAssertEqual(task.columns, expectedSides[name], name)
            XCTAssertEqual(task.train.countsPerClass(classCount: classes), quotas(800, classes), "\(name) train")
            XCTAssertEqual(task.validation.countsPerClass(classCount: classes), quotas(200, classes), "\(name) validation")
            switch name {
            case "fmnist-1k":
                XCTAssertEqual(task.test.countsPerClass(classCount: classes), [Int](repeating: 200, count: 10))
            case "digits-1k":
                // All 1,797 images: 1,000 train + validation, the other 797 test (100 per class in the pool).
                XCTAssertEqual(task.test.count, 797)
                XCTAssertEqual(task.test.countsPerClass(classCount: classes), [78, 82, 77, 83, 81, 82, 81, 79, 74, 80])
            default:
                XCTAssertEqual(task.test.countsPerClass(classCount: classes), quotas(1_000, classes), "\(name) test")
            }
            for (splitName, split) in [("train", task.train), ("validation", task.validation), ("test", task.test)] {
                XCTAssertEqual(split.images.count, split.labels.count)
                XCTAssertTrue(split.labels.allSatisfy { (0..<classes).contains($0) }, "\(name) \(splitName): label out of range")
                XCTAssertTrue(split.images.allSatisfy { $0.count == task.rows * task.columns },
                              "\(name) \(splitName): image of the wrong size")
                XCTAssertTrue(split.images.allSatisfy { $0.allSatisfy { $0 >= 0 && $0 <= 1 } },
                              "\(name) \(splitName): pixel outside [0, 1]")
                XCTAssertTrue(split.images.allSatisfy { ($0.max() ?? 0) > 0.3 }, "\(name) \(splitName): blank image")
                // Classes are interleaved, not in blocks.
                XCTAssertNotEqual(split.labels, split.labels.sorted(), "\(name) \(splitName): labels are sorted")
            }
        }
    }

    func testImageSplitsShareNoImage() throws {
        for name in Self.imageTaskNames {
            let task = try image(name)
            let train = Set(task.train.images), validation = Set(task.validation.images), test = Set(task.test.images)
            XCTAssertEqual(train.count, task.train.count, "\(name): repeated image in train")
            XCTAssertEqual(validation.count, task.validation.count, "\(name): repeated image in validation")
            XCTAssertEqual(test.count, task.test.count, "\(name): repeated image in test")
            XCTAssertTrue(train.isDisjoint(with: validation), "\(name): train and validation share an image")
            XCTAssertTrue(train.isDisjoint(with: test), "\(name): train and test share an image")
            XCTAssertTrue(validation.isDisjoint(with: test), "\(name): validation and test share an image")
        }
    }

    func testImageTasksAreDeterministicAndTheSeedMovesOnlyTrainAndValidation() throws {
        for name in Self.imageTaskNames {
            let first = try image(name)
            let again = try TaskRegistry.image(named: name)   // fresh load, not the cache
            XCTAssertEqual(first.train.images, again.train.images, "\(name): train differs between loads")
            XCTAssertEqual(first.train.labels, again.train.labels, name)
            XCTAssertEqual(first.validation.images, again.validation.images, "\(name): validation differs between loads")
            XCTAssertEqual(first.validation.labels, again.validation.labels, name)
            XCTAssertEqual(first.test.images, again.test.images, "\(name): test differs between loads")
            XCTAssertEqual(first.test.labels, again.test.labels, name)

            let other = try image(name, seed: 1)
            XCTAssertNotEqual(first.train.images, other.train.images, "\(name): seed 1 gives the same train draw")
            XCTAssertNotEqual(first.validation.images, other.validation.images, "\(name): seed 1 gives the same validation draw")
            XCTAssertEqual(first.test.images, other.test.images, "\(name): the test set depends on the seed")
            XCTAssertEqual(first.test.labels, other.test.labels, name)
            // Still disjoint from the fixed test set under another seed.
            XCTAssertTrue(Set(other.train.images + other.validation.images).isDisjoint(with: Set(other.test.images)), name)
        }
    }

    func testDigitsSeedOnlyRedistributesTheFixedPool() throws {
        let first = try image("digits-1k"), other = try image("digits-1k", seed: 1)
        XCTAssertEqual(Set(first.train.images + first.validation.images), Set(other.train.images + other.validation.images))
        XCTAssertNotEqual(Set(first.validation.images), Set(other.validation.images))
    }

    func testMirroringKeepsLabelsOnlyWhereItShould() throws {
        XCTAssertTrue(try image("fmnist-1k").horizontalFlipPreservesLabel)
        XCTAssertTrue(try image("count-1k").horizontalFlipPreservesLabel)
        XCTAssertFalse(try image("digits-1k").horizontalFlipPreservesLabel)
        XCTAssertFalse(try image("shapes-loc-1k").horizontalFlipPreservesLabel)
        XCTAssertFalse(try image("shapes-ori-1k").horizontalFlipPreservesLabel)
    }

    // MARK: Structured tasks: the defining property

    func testShapesLocationCentroidFallsInTheLabelBin() throws {
        let task = try image("shapes-loc-1k")
        var hits = 0, nearHits = 0, total = 0
        for split in [task.train, task.validation, task.test] {
            for (pixels, label) in zip(split.images, split.labels) {
                let x = Picture(pixels, side: task.columns).centroid().x
                let bin = Int(((x - 6) / 2.5).rounded(.down))
                total += 1
                if bin == label { hits += 1 }
                if abs(bin - label) <= 1 { nearHits += 1 }
            }
        }
        XCTAssertGreaterThan(Double(hits) / Double(total), 0.95, "centroid bin matches label for \(hits) of \(total)")
        XCTAssertGreaterThan(Double(nearHits) / Double(total), 0.995, "centroid bin within one for \(nearHits) of \(total)")
    }

    func testShapesOrientationMomentsPointInTheLabelDirection() throws {
        let task = try image("shapes-ori-1k")
        var hits = 0, nearHits = 0, total = 0
        for split in [task.train, task.validation, task.test] {
            for (pixels, label) in zip(split.images, split.labels) {
                let bin = orientationBin(Picture(pixels, side: task.columns).pointingAngle())
                total += 1
                if bin == label { hits += 1 }
                if [0, 1, 7].contains((bin - label + 8) % 8) { nearHits += 1 }
            }
        }
        XCTAssertGreaterThan(Double(hits) / Double(total), 0.95, "moment bin matches label for \(hits) of \(total)")
        XCTAssertGreaterThan(Double(nearHits) / Double(total), 0.995, "moment bin within one for \(nearHits) of \(total)")
    }

    func testOppositeOrientationsRenderDifferentlyAndPointOppositeWays() {
        for (step, degrees) in [0.0, 10.0, 45.0, 100.0, 200.0, 290.0].enumerated() {
            let angle = degrees * Double.pi / 180
            func render(_ orientation: Double) -> [Float] {
                let shape = SceneShape(kind: .isoscelesTriangle, centreX: 16, centreY: 16, size: 15, aspect: 0.45,
                                       orientation: orientation, brightness: 0.9)
                return GreyScene(rows: 32, columns: 32, background: 0.1, noiseSeed: UInt64(step), shapes: [shape]).render()
            }
            let forward = render(angle), backward = render(angle + Double.pi)
            let difference = zip(forward, backward).map { abs($0 - $1) }.reduce(0, +)
            XCTAssertGreaterThan(difference, 20, "\(degrees) degrees: the two directions look alike")
            let forwardBin = orientationBin(Picture(forward, side: 32).pointingAngle())
            let backwardBin = orientationBin(Picture(backward, side: 32).pointingAngle())
            XCTAssertEqual(forwardBin, orientationBin(angle), "\(degrees) degrees")
            XCTAssertEqual((backwardBin - forwardBin + 8) % 8, 4, "\(degrees) degrees: not opposite bins")
        }
    }

    func testCountEqualsTheNumberOfBrightBlobs() throws {
        let task = try image("count-1k")
        var hits = 0, total = 0
        var misses: [String] = []
        for split in [task.train, task.validation, task.test] {
            for (pixels, label) in zip(split.images, split.labels) {
                let blobs = Picture(pixels, side: task.columns).brightBlobCount()
                total += 1
                if blobs == label + 1 { hits += 1 } else if misses.count < 5 { misses.append("\(blobs) for \(label + 1)") }
            }
        }
        XCTAssertGreaterThan(Double(hits) / Double(total), 0.98, "blob count matches for \(hits) of \(total); e.g. \(misses)")
    }

    func testStructuredImagesAreNotTrivial() throws {
        // Same label, different pictures: size, position and grey level vary.
        for name in ["shapes-loc-1k", "shapes-ori-1k", "count-1k"] {
            let task = try image(name)
            let ofClass0 = zip(task.train.images, task.train.labels).filter { $0.1 == 0 }.map(\.0)
            let brightness = ofClass0.map { $0.reduce(0, +) }
            XCTAssertGreaterThan((brightness.max() ?? 0) - (brightness.min() ?? 0), 20, "\(name): class 0 images look alike")
        }
    }

    func testRasteriserAntiAliasesAndIsDeterministic() {
        let scene = GreyScene(rows: 32, columns: 32, background: 0, noiseAmplitude: 0, shapes: [
            SceneShape(kind: .ellipse, centreX: 10.3, centreY: 12.7, size: 6, aspect: 0.6, orientation: 0.4, brightness: 1),
            SceneShape(kind: .square, centreX: 24, centreY: 22, size: 5, orientation: 0.2, brightness: 0.5),
        ])
        let pixels = scene.render()
        XCTAssertEqual(pixels, scene.render())
        // Edge pixels take partial coverage in steps of 1/16 (4x4 samples).
        let partial = pixels.filter { $0 > 0 && $0 < 1 && $0 != 0.5 }
        XCTAssertGreaterThan(partial.count, 10)
        XCTAssertTrue(pixels.allSatisfy { ($0 * 16).rounded() == $0 * 16 || ($0 * 32).rounded() == $0 * 32 })
        // Ellipse area pi * 6 * 3.6 and square area 2 * 5^2 (half-diagonal 5), by coverage.
        let ellipse = pixels.enumerated().filter { $0.offset % 32 < 18 }.map(\.element).reduce(0, +)
        XCTAssertEqual(Double(ellipse), Double.pi * 6 * 3.6, accuracy: 1.5)
        let square = pixels.enumerated().filter { $0.offset % 32 >= 18 }.map(\.element).reduce(0, +)
        XCTAssertEqual(Double(square), 0.5 * 50, accuracy: 1)
        // Noise is mild and deterministic.
        var noisy = scene
        noisy.noiseAmplitude = 0.03
        noisy.noiseSeed = 7
        let noisyPixels = noisy.render()
        XCTAssertEqual(noisyPixels, noisy.render())
        XCTAssertTrue(zip(noisyPixels, pixels).allSatisfy { abs($0 - $1) <= 0.0301 })
        XCTAssertNotEqual(noisyPixels, pixels)
    }

    // MARK: Text task

    func testFortunesSplitsSizesBalanceAndCleanTexts() throws {
        let task = try text("fortunes-1k")
        let classes = task.classNames.count
        XCTAssertEqual(task.name, "fortunes-1k")
        XCTAssertGreaterThanOrEqual(classes, 2)
        XCTAssertTrue(Set(task.classNames).isSubset(of: ["computers", "food", "law", "medicine", "politics", "science",
                                                         "sports", "education", "love"]))
        XCTAssertEqual(task.train.countsPerClass(classCount: classes), quotas(800, classes))
        XCTAssertEqual(task.validation.countsPerClass(classCount: classes), quotas(200, classes))
        let testCounts = task.test.countsPerClass(classCount: classes)
        XCTAssertTrue(testCounts.allSatisfy { $0 >= 1 && $0 <= 100 }, "\(testCounts)")
        XCTAssertTrue(testCounts.contains(100), "\(testCounts)")
        for split in [task.train, task.validation, task.test] {
            XCTAssertEqual(split.texts.count, split.labels.count)
            XCTAssertTrue(split.labels.allSatisfy { (0..<classes).contains($0) })
            for text in split.texts {
                XCTAssertTrue((20...600).contains(text.count), "length \(text.count): \(text.prefix(60))")
                XCTAssertFalse(text.contains("  ") || text.contains("\n") || text.contains("\t"), String(text.prefix(60)))
                XCTAssertEqual(text, text.trimmingCharacters(in: .whitespaces))
            }
        }
        let train = Set(task.train.texts), validation = Set(task.validation.texts), test = Set(task.test.texts)
        XCTAssertEqual(train.count + validation.count + test.count,
                       task.train.count + task.validation.count + task.test.count, "a text repeats")
        XCTAssertTrue(train.isDisjoint(with: validation))
        XCTAssertTrue(train.isDisjoint(with: test))
        XCTAssertTrue(validation.isDisjoint(with: test))
    }

    func testFortunesDropsTooSmallCategoriesAndSaysSo() throws {
        let task = try text("fortunes-1k")
        // medicine has about 60 usable entries, fewer than a train + validation share.
        XCTAssertFalse(task.classNames.contains("medicine"))
        XCTAssertTrue(task.summary.contains("dropped medicine"), task.summary)
        XCTAssertEqual(TaskRegistry.summary(of: "fortunes-1k"), task.summary.replacingOccurrences(
            of: "test \(task.test.count) (up to 100 per class, fixed)", with: "test up to 100 per class (fixed)"))
    }

    func testFortunesIsDeterministicAndTheSeedMovesOnlyTrainAndValidation() throws {
        let first = try text("fortunes-1k"), again = try TaskRegistry.text(named: "fortunes-1k")
        XCTAssertEqual(first.train.texts, again.train.texts)
        XCTAssertEqual(first.train.labels, again.train.labels)
        XCTAssertEqual(first.validation.texts, again.validation.texts)
        XCTAssertEqual(first.test.texts, again.test.texts)
        XCTAssertEqual(first.test.labels, again.test.labels)
        let other = try text("fortunes-1k", seed: 1)
        XCTAssertNotEqual(first.train.texts, other.train.texts)
        XCTAssertEqual(first.test.texts, other.test.texts)
        XCTAssertEqual(first.test.labels, other.test.labels)
        XCTAssertTrue(Set(other.train.texts + other.validation.texts).isDisjoint(with: Set(other.test.texts)))
    }

    // MARK: Pictures for a human

    /// Writes a PGM contact sheet per image task (8 examples of each class, one class a row, 4x enlarged) to
    /// the folder named by `TASK_EXAMPLES_DIR`; does nothing when it is unset.
    func testWritesExampleSheetsWhenAsked() throws {
        guard let folder = ProcessInfo.processInfo.environment["TASK_EXAMPLES_DIR"], !folder.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in Self.imageTaskNames {
            let task = try image(name)
            let scale = task.rows >= 28 ? 4 : 12, perClass = 8, gap = 2
            let cell = task.rows * scale + gap
            let width = perClass * cell, height = task.classNames.count * cell
            var sheet = [UInt8](repeating: 128, count: width * height)
            for label in task.classNames.indices {
                let examples = zip(task.train.images, task.train.labels).filter { $0.1 == label }.prefix(perClass)
                for (column, example) in examples.enumerated() {
                    for y in 0..<(task.rows * scale) {
                        for x in 0..<(task.columns * scale) {
                            let value = example.0[(y / scale) * task.columns + x / scale]
                            sheet[(label * cell + y) * width + column * cell + x] = UInt8((value * 255).rounded())
                        }
                    }
                }
            }
            let header = Array("P5\n\(width) \(height)\n255\n".utf8)
            try Data(header + sheet).write(to: URL(fileURLWithPath: folder).appendingPathComponent("\(name).pgm"))
        }
    }
}

// MARK: - Image measurements used by the tests

/// A square grey picture with the measurements the structured-task tests need.
private struct Picture {
    let pixels: [Float]
    let side: Int

    init(_ pixels: [Float], side: Int) {
        self.pixels = pixels
        self.side = side
    }

    /// The median grey level (the background, as shapes cover well under half the picture).
    var median: Float { pixels.sorted()[pixels.count / 2] }

    /// Weight of each pixel: brightness above the background plus a noise margin.
    var weights: [Double] {
        let floor = median + 0.1
        return pixels.map { Double(max(0, $0 - floor)) }
    }

    /// Brightness-weighted centroid in pixel coordinates (pixel centres at +0.5; y downwards).
    func centroid() -> (x: Double, y: Double) {
        var total = 0.0, sumX = 0.0, sumY = 0.0
        for (index, weight) in weights.enumerated() {
            total += weight
            sumX += weight * (Double(index % side) + 0.5)
            sumY += weight * (Double(index / side) + 0.5)
        }
        return (sumX / total, sumY / total)
    }

    /// Direction (radians, counter-clockwise on screen) of the long axis of the bright mass, pointing to the
    /// side with the longer tail: for an isosceles triangle, its apex.
    func pointingAngle() -> Double {
        let (cx, cy) = centroid()
        let w = weights
        var xx = 0.0, yy = 0.0, xy = 0.0
        for (index, weight) in w.enumerated() {
            let dx = Double(index % side) + 0.5 - cx, up = cy - (Double(index / side) + 0.5)
            xx += weight * dx * dx
            yy += weight * up * up
            xy += weight * dx * up
        }
        var axis = 0.5 * atan2(2 * xy, xx - yy)
        var skew = 0.0
        for (index, weight) in w.enumerated() {
            let dx = Double(index % side) + 0.5 - cx, up = cy - (Double(index / side) + 0.5)
            let t = dx * cos(axis) + up * sin(axis)
            skew += weight * t * t * t
        }
        if skew < 0 { axis += Double.pi }
        return axis
    }

    /// Number of 4-connected groups of pixels brighter than the background by more than 0.25.
    func brightBlobCount() -> Int {
        let threshold = median + 0.25
        var seen = [Bool](repeating: false, count: pixels.count)
        var blobs = 0
        for start in pixels.indices where pixels[start] > threshold && !seen[start] {
            blobs += 1
            var stack = [start]
            seen[start] = true
            while let index = stack.popLast() {
                let row = index / side, column = index % side
                for (r, c) in [(row - 1, column), (row + 1, column), (row, column - 1), (row, column + 1)]
                    where r >= 0 && r < side && c >= 0 && c < side {
                    let neighbour = r * side + c
                    if !seen[neighbour] && pixels[neighbour] > threshold {
                        seen[neighbour] = true
                        stack.append(neighbour)
                    }
                }
            }
        }
        return blobs
    }
}

/// The orientation bin (of 8, centred on multiples of 45 degrees) of an angle in radians.
private func orientationBin(_ angle: Double) -> Int {
    let turns = Int((angle / (Double.pi / 4)).rounded())
    return ((turns % 8) + 8) % 8
}
