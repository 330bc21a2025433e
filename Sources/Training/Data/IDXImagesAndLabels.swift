import Foundation

/// Greyscale images from an IDX3 file (`count x rows x columns` unsigned bytes).
public struct IDXImages: Sendable {
    /// Number of images.
    public let count: Int
    /// Image height in pixels.
    public let rows: Int
    /// Image width in pixels.
    public let columns: Int
    /// All pixels, image after image, each row-major (`count * rows * columns` bytes).
    public let pixels: [UInt8]

    /// Reads an IDX3 image file (raw or gzipped).
    ///
    /// - Throws: ``DataReaderError`` naming the file when it is unreadable, corrupt or not 3-dimensional.
    public static func load(_ url: URL) throws -> IDXImages {
        let file = try IDXFile.load(url, expectedRank: 3)
        return IDXImages(count: file.dimensions[0], rows: file.dimensions[1], columns: file.dimensions[2],
                         pixels: file.data)
    }
}

/// Class labels from an IDX1 file (one unsigned byte per example).
public struct IDXLabels: Sendable {
    /// One label per example.
    public let labels: [UInt8]

    /// Reads an IDX1 label file (raw or gzipped).
    ///
    /// - Throws: ``DataReaderError`` naming the file when it is unreadable, corrupt or not 1-dimensional.
    public static func load(_ url: URL) throws -> IDXLabels {
        IDXLabels(labels: try IDXFile.load(url, expectedRank: 1).data)
    }
}
