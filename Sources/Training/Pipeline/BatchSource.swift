import Dispatch
import Engine
import Methods
import Models

/// Turns example indices of one split into a model input plus labels.
public protocol BatchSource: AnyObject {
    /// Number of examples.
    var count: Int { get }
    /// Labels of all examples.
    var labels: [Int] { get }
    /// The input for `indices`; `augment` enables training-time augmentation, drawn from `generator`.
    func batch(_ indices: [Int], augment: Bool, generator: inout RandomGenerator) -> ClassifierInput
    /// Which examples of a batch of `count` get flipped (drawn exactly as `batch` draws them).
    func flips(count: Int, augment: Bool, generator: inout RandomGenerator) -> [Bool]
    /// Whether this source can flip at all.
    var flipsImages: Bool { get }
    /// The input for `indices` with the given flips (drawn beforehand with `flips`); the same input `batch` makes
    /// when it draws those flips itself.
    func batch(_ indices: [Int], flips: [Bool]) -> ClassifierInput
}

extension BatchSource {
    /// A source that never flips has no other augmentation: the flips are all false and ignored.
    public func batch(_ indices: [Int], flips: [Bool]) -> ClassifierInput {
        var generator = RandomGenerator(seed: 0)
        return batch(indices, augment: false, generator: &generator)
    }
    public func flips(count: Int, augment: Bool, generator: inout RandomGenerator) -> [Bool] {
        [Bool](repeating: false, count: count)
    }
    public var flipsImages: Bool { false }
}

/// A source whose only augmentation is a random left-right flip of each image (when `flip` is set).
public protocol FlippingBatchSource: BatchSource {
    var flip: Bool { get }
}

extension FlippingBatchSource {
    public var flipsImages: Bool { flip }

    public func flips(count: Int, augment: Bool, generator: inout RandomGenerator) -> [Bool] {
        (0..<count).map { _ in augment && flip && generator.nextUniform() < 0.5 }
    }

    public func batch(_ indices: [Int], augment: Bool, generator: inout RandomGenerator) -> ClassifierInput {
        batch(indices, flips: flips(count: indices.count, augment: augment, generator: &generator))
    }
}

/// Grey images of an image task: resized, made RGB and normalised; random horizontal flips when augmenting.
public final class ImageBatchSource: FlippingBatchSource {
    public let split: ImageSplit
    public let rows: Int, columns: Int
    public let preprocessor: ImagePreprocessor
    public let flip: Bool

    public init(split: ImageSplit, rows: Int, columns: Int, preprocessor: ImagePreprocessor, flip: Bool) {
        self.split = split
        self.rows = rows
        self.columns = columns
        self.preprocessor = preprocessor
        self.flip = flip
    }

    public var count: Int { split.labels.count }
    public var labels: [Int] { split.labels }

    /// A batch with the given flips.
    public func batch(_ indices: [Int], flips: [Bool]) -> ClassifierInput {
        .images(preprocessor.batch(indices.map { split.images[$0] }, rows: rows, columns: columns, flips: flips))
    }
}

/// Texts of a text task, tokenised with WordPiece and padded to the longest in the batch.
public final class TextBatchSource: BatchSource {
    public let split: TextSplit
    public let tokenizer: WordPieceTokenizer
    public let maxLength: Int

    public init(split: TextSplit, tokenizer: WordPieceTokenizer, maxLength: Int = 128) {
        self.split = split
        self.tokenizer = tokenizer
        self.maxLength = maxLength
    }

    public var count: Int { split.labels.count }
    public var labels: [Int] { split.labels }

    public func batch(_ indices: [Int], augment: Bool, generator: inout RandomGenerator) -> ClassifierInput {
        let encoded = tokenizer.encodeBatch(indices.map { split.texts[$0] }, maxLength: maxLength)
        return .tokens(TokenBatch(ids: encoded.ids, mask: encoded.mask))
    }
}

/// Prepares the next batch on a background thread while the current step runs.
final class Prefetcher {
    /// Holds the result; the background work keeps it alive even if the prefetcher goes away first
    /// (e.g. when a step throws).
    private final class Slot: @unchecked Sendable { var value: ClassifierInput? }
    private let queue = DispatchQueue(label: "peft.prefetch")
    private var pending: DispatchWorkItem?
    private var slot = Slot()

    /// Starts preparing a batch.
    func start(_ work: @escaping () -> ClassifierInput) {
        let slot = Slot()
        self.slot = slot
        // Under an address-space limit the batch is made here: a prefetch thread might not fit (see
        // `Parallel.mayStartThreads`).
        guard Parallel.mayStartThreads else {
            slot.value = work()
            pending = nil
            return
        }
        let item = DispatchWorkItem { slot.value = work() }
        pending = item
        queue.async(execute: item)
    }

    /// Waits for the batch started last and returns it.
    func take() -> ClassifierInput {
        pending?.wait()
        pending = nil
        return slot.value!
    }
}

/// Pictures of a user's image folder (already at the training side): normalised, optionally flipped left-right.
public final class PictureBatchSource: FlippingBatchSource {
    public let split: PictureSplit
    public let preprocessor: ImagePreprocessor
    public let flip: Bool

    public init(split: PictureSplit, preprocessor: ImagePreprocessor, flip: Bool) {
        self.split = split
        self.preprocessor = preprocessor
        self.flip = flip
    }

    public var count: Int { split.labels.count }
    public var labels: [Int] { split.labels }

    public func batch(_ indices: [Int], flips: [Bool]) -> ClassifierInput {
        let side = split.side, plane = side * side
        let out = Tensor(uninitialized: [indices.count, 3, side, side])
        Parallel.forEachChunk(indices.count, grain: 1) { range in
            for i in range {
                let picture = split.pictures[indices[i]], base = out.data + i * 3 * plane
                for channel in 0..<3 {
                    let m = preprocessor.mean[channel], inverseStd = 1 / preprocessor.std[channel]
                    for y in 0..<side {
                        for x in 0..<side {
                            let sourceX = flips[i] ? side - 1 - x : x
                            base[channel * plane + y * side + x] = (Float(picture[channel * plane + y * side + sourceX]) / 255 - m) * inverseStd
                        }
                    }
                }
            }
        }
        return .images(out)
    }
}
