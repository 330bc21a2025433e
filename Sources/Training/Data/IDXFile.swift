import Foundation

/// An IDX file (the MNIST container format) holding unsigned bytes: big-endian header
/// `00 00 08 <rank>`, then `rank` 32-bit big-endian dimensions, then the row-major data.
///
/// Files may be raw or gzipped (detected from the content). Only element type 0x08 (unsigned byte) is supported.
public struct IDXFile: Sendable {
    /// Largest element count accepted, checked before any allocation (2^31, far above any real IDX file).
    public static let maximumElementCount = 1 << 31

    /// Size of each dimension, outermost first.
    public let dimensions: [Int]
    /// The elements, row-major; `data.count` is the product of ``dimensions``.
    public let data: [UInt8]

    /// Reads and validates the IDX file at `url`.
    ///
    /// - Parameter expectedRank: when given, the number of dimensions the file must have.
    /// - Throws: ``DataReaderError`` naming the file for a missing/unreadable file, corrupt gzip, bad magic number,
    ///   unsupported element type, wrong rank, absurd dimensions, or a size that does not match the dimensions.
    public static func load(_ url: URL, expectedRank: Int? = nil) throws -> IDXFile {
        let bytes = try DataFileBytes.read(url)
        return try parse(bytes, name: url.path, expectedRank: expectedRank)
    }

    /// Parses IDX content already in memory (uncompressed); `name` is used in error messages.
    public static func parse(_ bytes: [UInt8], name: String, expectedRank: Int? = nil) throws -> IDXFile {
        func failure(_ problem: String) -> DataReaderError { DataReaderError(file: name, problem: problem) }
        guard bytes.count >= 4 else {
            throw failure("truncated IDX file: \(bytes.count) bytes, too short for the 4-byte magic number")
        }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw failure(String(format: "bad IDX magic number %02x%02x%02x%02x (must start with 0000)",
                                 bytes[0], bytes[1], bytes[2], bytes[3]))
        }
        guard bytes[2] == 0x08 else {
            throw failure(String(format: "unsupported IDX element type 0x%02x (only 0x08, unsigned byte, is supported)",
                                 bytes[2]))
        }
        let rank = Int(bytes[3])
        guard rank >= 1 else { throw failure("IDX file declares zero dimensions") }
        if let expectedRank, rank != expectedRank {
            throw failure("IDX file has \(rank) dimensions, expected \(expectedRank)")
        }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else {
            throw failure("truncated IDX header: \(bytes.count) bytes, need \(headerSize) for \(rank) dimensions")
        }
        var dimensions: [Int] = []
        var elementCount = 1
        for index in 0..<rank {
            let offset = 4 + 4 * index
            let size = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8
                | Int(bytes[offset + 3])
            dimensions.append(size)
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: size)
            guard !overflow, product <= maximumElementCount else {
                throw failure("absurd IDX dimensions \(dimensionsText(dimensions, rank: rank)): more than "
                              + "\(maximumElementCount) elements")
            }
            elementCount = product
        }
        let expectedSize = headerSize + elementCount
        guard bytes.count >= expectedSize else {
            throw failure("truncated IDX file: dimensions \(dimensionsText(dimensions, rank: rank)) need "
                          + "\(expectedSize) bytes, found \(bytes.count)")
        }
        guard bytes.count == expectedSize else {
            throw failure("IDX file has \(bytes.count - expectedSize) unexpected bytes after the "
                          + "\(expectedSize) that dimensions \(dimensionsText(dimensions, rank: rank)) need")
        }
        return IDXFile(dimensions: dimensions, data: Array(bytes[headerSize...]))
    }

    private static func dimensionsText(_ dimensions: [Int], rank: Int) -> String {
        let known = dimensions.map(String.init)
        return (known + [String](repeating: "?", count: rank - known.count)).joined(separator: "x")
    }
}
