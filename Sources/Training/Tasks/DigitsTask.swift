import Engine
import Foundation
import Models

/// `digits-1k`: scikit-learn's 8x8 digits under the 1k protocol. A fixed, balanced pool of 1,000 images
/// (100 per class) is set aside with a fixed seed and every other image (797) is the test set; the seed draws
/// which 80 per class of the pool train and which 20 validate, so the test set never depends on it.
enum DigitsTask {
    static let name = "digits-1k"
    static let summary = "scikit-learn digits 8x8 grey (0-16 scaled to 0-1), 10 classes; 800 train + 200 val (balanced, seeded split of a fixed 1,000-image pool), test = the other 797 images (fixed)"

    static func load(seed: UInt64, file: URL? = nil) throws -> ImageClassificationTask {
        let digits = try Digits.load(file ?? Digits.defaultFile(assetsDirectory: Assets.root))
        let classCount = Digits.classNames.count
        let byClass = BalancedDraw.indicesByClass(digits.labels, classCount: classCount)
        let trainQuotas = BalancedDraw.quotas(total: TaskRegistry.trainCount, classCount: classCount)
        let validationQuotas = BalancedDraw.quotas(total: TaskRegistry.validationCount, classCount: classCount)
        let poolQuotas = zip(trainQuotas, validationQuotas).map { $0 + $1 }
        let context = "\(name) (\(file?.path ?? Digits.defaultFile(assetsDirectory: Assets.root).path))"

        // The pool is fixed; exact duplicates of a pool image are kept out of the test set.
        var poolGenerator = TaskRandomness.generator(task: name, purpose: "pool")
        var poolPixels = Set<ArraySlice<UInt8>>()
        let pool = try BalancedDraw.draw(candidatesByClass: byClass, quotas: [poolQuotas], generator: &poolGenerator,
                                         context: context) { poolPixels.insert(digits.pixels(ofImage: $0)).inserted }[0]
        let inPool = Set(pool)
        var seenTest = Set<ArraySlice<UInt8>>()
        let testIndices = (0..<digits.count).filter { index in
            guard !inPool.contains(index) else { return false }
            let pixels = digits.pixels(ofImage: index)
            return !poolPixels.contains(pixels) && seenTest.insert(pixels).inserted
        }

        var splitGenerator = TaskRandomness.generator(task: name, purpose: "train-validation", seed)
        let drawn = try BalancedDraw.draw(
            candidatesByClass: BalancedDraw.indicesByClass(pool.map { digits.labels[$0] }, classCount: classCount)
                .map { $0.map { pool[$0] } },
            quotas: [trainQuotas, validationQuotas], generator: &splitGenerator, context: context)

        func split(_ indices: [Int]) -> ImageSplit {
            ImageSplit(images: indices.map { digits.normalisedPixels(ofImage: $0) }, labels: indices.map { digits.labels[$0] })
        }
        return ImageClassificationTask(name: name, summary: summary, classNames: Digits.classNames,
                                       rows: digits.rows, columns: digits.columns, horizontalFlipPreservesLabel: false,
                                       train: split(drawn[0]), validation: split(drawn[1]), test: split(testIndices))
    }
}
