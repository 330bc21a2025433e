import Engine
import Foundation

/// `fmnist-1k`: Fashion-MNIST under the 1k protocol. Train and validation (80 + 20 per class) come from the
/// official training file, drawn with the seed; the test set is 200 per class of the official test file, chosen
/// with a fixed seed.
enum FashionMNISTTask {
    static let name = "fmnist-1k"
    static let summary = "Fashion-MNIST 28x28 grey clothing, 10 classes; 800 train + 200 val from the official train file (balanced, seeded), test 2,000 (200 per class) from the official test file (fixed)"
    static let testPerClass = 200

    static func load(seed: UInt64, directory: URL = FashionMNIST.defaultDirectory) throws -> ImageClassificationTask {
        let officialTest = try FashionMNIST.load(.test, directory: directory)
        let officialTrain = try FashionMNIST.load(.train, directory: directory)
        let classCount = FashionMNIST.classNames.count
        let context = "\(name) (\(directory.path))"

        // Test first, with a fixed seed; then train/val, skipping any image identical to one already taken.
        var taken = Set<ArraySlice<UInt8>>()
        var testGenerator = TaskRandomness.generator(task: name, purpose: "test")
        let testIndices = try BalancedDraw.draw(
            candidatesByClass: BalancedDraw.indicesByClass(officialTest.labels, classCount: classCount),
            quotas: [[Int](repeating: testPerClass, count: classCount)], generator: &testGenerator,
            context: context + " test") { taken.insert(officialTest.pixels(ofImage: $0)).inserted }[0]

        var poolGenerator = TaskRandomness.generator(task: name, purpose: "train-validation", seed)
        let drawn = try BalancedDraw.draw(
            candidatesByClass: BalancedDraw.indicesByClass(officialTrain.labels, classCount: classCount),
            quotas: [BalancedDraw.quotas(total: TaskRegistry.trainCount, classCount: classCount),
                     BalancedDraw.quotas(total: TaskRegistry.validationCount, classCount: classCount)],
            generator: &poolGenerator, context: context + " train/validation") {
                taken.insert(officialTrain.pixels(ofImage: $0)).inserted
            }

        func split(_ set: LabelledGreyImages, _ indices: [Int]) -> ImageSplit {
            ImageSplit(images: indices.map { set.normalisedPixels(ofImage: $0) }, labels: indices.map { set.labels[$0] })
        }
        return ImageClassificationTask(name: name, summary: summary, classNames: FashionMNIST.classNames,
                                       rows: officialTrain.rows, columns: officialTrain.columns,
                                       horizontalFlipPreservesLabel: true,
                                       train: split(officialTrain, drawn[0]), validation: split(officialTrain, drawn[1]),
                                       test: split(officialTest, testIndices))
    }
}
