import Foundation

/// Reader for Fashion-MNIST (Zalando, MIT licence): 28x28 greyscale clothing images in 10 balanced classes,
/// 60,000 for training and 10,000 for testing, stored as gzipped IDX files.
public enum FashionMNIST {
    /// The ten class names, by label.
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// Where Debian's `dataset-fashion-mnist` package installs the files.
    public static let defaultDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    /// The two official splits.
    public enum Split: String, Sendable, CaseIterable {
        /// 60,000 training images (`train-*` files).
        case train
        /// 10,000 test images (`t10k-*` files).
        case test

        /// File name prefix of the split.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// The image file of `split` in `directory`.
    public static func imagesFile(_ split: Split, directory: URL = defaultDirectory) -> URL {
        directory.appendingPathComponent("\(split.filePrefix)-images-idx3-ubyte.gz")
    }

    /// The label file of `split` in `directory`.
    public static func labelsFile(_ split: Split, directory: URL = defaultDirectory) -> URL {
        directory.appendingPathComponent("\(split.filePrefix)-labels-idx1-ubyte.gz")
    }

    /// Loads one split: images with labels in 0...9 and ``classNames``.
    ///
    /// - Throws: ``DataReaderError`` naming the file when a file is missing or corrupt, when image and label
    ///   counts differ, or when a label is not in 0...9.
    public static func load(_ split: Split, directory: URL = defaultDirectory) throws -> LabelledGreyImages {
        let imageURL = imagesFile(split, directory: directory)
        let labelURL = labelsFile(split, directory: directory)
        let images = try IDXImages.load(imageURL)
        let labels = try IDXLabels.load(labelURL)
        guard images.count == labels.labels.count else {
            throw DataReaderError(file: labelURL.path,
                                  problem: "has \(labels.labels.count) labels but \(imageURL.path) has \(images.count) images")
        }
        if let bad = labels.labels.firstIndex(where: { Int($0) >= classNames.count }) {
            throw DataReaderError(file: labelURL.path,
                                  problem: "label \(labels.labels[bad]) at index \(bad) is not a class in 0...9")
        }
        return LabelledGreyImages(rows: images.rows, columns: images.columns, pixels: images.pixels,
                                  maximumPixelValue: 255, labels: labels.labels.map(Int.init), classNames: classNames)
    }
}
