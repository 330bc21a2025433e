/// Small greyscale images with integer class labels, as the dataset readers return them.
public struct LabelledGreyImages: Sendable {
    /// Image height in pixels.
    public let rows: Int
    /// Image width in pixels.
    public let columns: Int
    /// All pixels, image after image, each row-major (`count * rows * columns` values).
    public let pixels: [UInt8]
    /// The brightest possible pixel value (255 for Fashion-MNIST, 16 for the digits).
    public let maximumPixelValue: Int
    /// Class index of each image, in `0..<classNames.count`.
    public let labels: [Int]
    /// Human-readable name of each class.
    public let classNames: [String]

    /// Number of images.
    public var count: Int { labels.count }

    /// Number of pixels in one image.
    public var pixelsPerImage: Int { rows * columns }

    /// Creates the set; the caller guarantees `pixels.count == labels.count * rows * columns` and labels in range.
    init(rows: Int, columns: Int, pixels: [UInt8], maximumPixelValue: Int, labels: [Int], classNames: [String]) {
        self.rows = rows
        self.columns = columns
        self.pixels = pixels
        self.maximumPixelValue = maximumPixelValue
        self.labels = labels
        self.classNames = classNames
    }

    /// The pixels of image `index` (row-major), or an empty slice when `index` is out of range.
    public func pixels(ofImage index: Int) -> ArraySlice<UInt8> {
        guard index >= 0, index < count else { return [] }
        return pixels[(index * pixelsPerImage)..<((index + 1) * pixelsPerImage)]
    }

    /// The pixels of image `index` scaled to 0...1 by ``maximumPixelValue`` (empty when out of range).
    public func normalisedPixels(ofImage index: Int) -> [Float] {
        let scale = 1 / Float(max(maximumPixelValue, 1))
        return pixels(ofImage: index).map { Float($0) * scale }
    }

    /// How many images each class has, indexed by class.
    public func countsPerClass() -> [Int] {
        var counts = [Int](repeating: 0, count: classNames.count)
        for label in labels where label >= 0 && label < counts.count { counts[label] += 1 }
        return counts
    }
}
