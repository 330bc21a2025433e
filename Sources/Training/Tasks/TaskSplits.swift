/// One split (train, validation or test) of an image task: grey images with their class labels.
public struct ImageSplit: Sendable {
    /// Grey images, each `rows * columns` values in [0, 1], row-major.
    public let images: [[Float]]
    /// Class index of each image, in `0..<classNames.count` of the task.
    public let labels: [Int]

    /// Creates a split; `images` and `labels` must have the same count.
    public init(images: [[Float]], labels: [Int]) {
        precondition(images.count == labels.count, "ImageSplit: \(images.count) images but \(labels.count) labels")
        self.images = images
        self.labels = labels
    }

    /// Number of examples.
    public var count: Int { labels.count }

    /// How many examples each of `classCount` classes has, indexed by class.
    public func countsPerClass(classCount: Int) -> [Int] { classCounts(labels, classCount: classCount) }
}

/// One split (train, validation or test) of a text task: texts with their class labels.
public struct TextSplit: Sendable {
    /// The texts, whitespace-normalised.
    public let texts: [String]
    /// Class index of each text, in `0..<classNames.count` of the task.
    public let labels: [Int]

    /// Creates a split; `texts` and `labels` must have the same count.
    public init(texts: [String], labels: [Int]) {
        precondition(texts.count == labels.count, "TextSplit: \(texts.count) texts but \(labels.count) labels")
        self.texts = texts
        self.labels = labels
    }

    /// Number of examples.
    public var count: Int { labels.count }

    /// How many examples each of `classCount` classes has, indexed by class.
    public func countsPerClass(classCount: Int) -> [Int] { classCounts(labels, classCount: classCount) }
}

/// Label histogram; labels outside `0..<classCount` are not counted.
private func classCounts(_ labels: [Int], classCount: Int) -> [Int] {
    var counts = [Int](repeating: 0, count: max(classCount, 0))
    for label in labels where label >= 0 && label < counts.count { counts[label] += 1 }
    return counts
}
