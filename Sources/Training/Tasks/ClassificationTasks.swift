/// Whether a task's inputs are images or texts.
public enum TaskKind: String, Sendable {
    /// Grey images (``ImageClassificationTask``).
    case image
    /// Short texts (``TextClassificationTask``).
    case text
}

/// An image classification task under the 1k protocol: 800 training and 200 validation images drawn balanced
/// per class with a seed, and a fixed test set.
public struct ImageClassificationTask: Sendable {
    /// Registry name, e.g. `fmnist-1k`.
    public let name: String
    /// One-line description of the data, the label and the split sizes.
    public let summary: String
    /// Human-readable name of each class, by label.
    public let classNames: [String]
    /// Image height in pixels.
    public let rows: Int
    /// Image width in pixels.
    public let columns: Int
    /// Whether mirroring an image left-right keeps its label (false for position and orientation tasks).
    public let horizontalFlipPreservesLabel: Bool
    /// 800 training images.
    public let train: ImageSplit
    /// 200 validation images (select hyper-parameters and checkpoints here).
    public let validation: ImageSplit
    /// The fixed test set, independent of the seed (report once).
    public let test: ImageSplit

    /// Creates a task from its parts.
    public init(name: String, summary: String, classNames: [String], rows: Int, columns: Int,
                horizontalFlipPreservesLabel: Bool, train: ImageSplit, validation: ImageSplit, test: ImageSplit) {
        self.name = name
        self.summary = summary
        self.classNames = classNames
        self.rows = rows
        self.columns = columns
        self.horizontalFlipPreservesLabel = horizontalFlipPreservesLabel
        self.train = train
        self.validation = validation
        self.test = test
    }
}

/// A text classification task under the 1k protocol: 800 training and 200 validation texts drawn balanced per
/// class with a seed, and a fixed test set.
public struct TextClassificationTask: Sendable {
    /// Registry name, e.g. `fortunes-1k`.
    public let name: String
    /// One-line description of the data, the classes (and any dropped) and the split sizes.
    public let summary: String
    /// Human-readable name of each class, by label.
    public let classNames: [String]
    /// 800 training texts.
    public let train: TextSplit
    /// 200 validation texts (select hyper-parameters and checkpoints here).
    public let validation: TextSplit
    /// The fixed test set, independent of the seed (report once).
    public let test: TextSplit

    /// Creates a task from its parts.
    public init(name: String, summary: String, classNames: [String], train: TextSplit, validation: TextSplit,
                test: TextSplit) {
        self.name = name
        self.summary = summary
        self.classNames = classNames
        self.train = train
        self.validation = validation
        self.test = test
    }
}
