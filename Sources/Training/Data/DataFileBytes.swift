import Checkpoints
import Foundation

/// Reads a dataset file's bytes, decompressing it when it is gzipped.
enum DataFileBytes {
    /// The largest data or image file read (1 GiB); larger ones are refused before reading.
    static let maximumFileBytes = 1 << 30

    /// The bytes of `url`, gunzipped when the file starts with the gzip magic number (whatever its extension).
    ///
    /// - Throws: ``DataReaderError`` naming the file when it is missing, unreadable or corrupt.
    static func read(_ url: URL, outputLimit: Int = Gzip.defaultOutputLimit) throws -> [UInt8] {
        let path = url.path
        let data: Data
        do {
            data = try RegularFile.read(url, limit: maximumFileBytes)
        } catch let failure as RegularFile.Failure {
            switch failure.kind {
            case .missing: throw DataReaderError(file: path, problem: "file not found")
            case .notRegular: throw DataReaderError(file: path, problem: failure.reason)
            case .tooLarge: throw DataReaderError(file: path, problem: failure.reason)
            case .unreadable, .invalid: throw DataReaderError(file: path, problem: "cannot be read (\(failure.reason))")
            }
        }
        if Gzip.hasGzipMagic(data) {
            return try Gzip.decompress(data, name: path, outputLimit: outputLimit)
        }
        if path.hasSuffix(".gz") {
            throw DataReaderError(file: path, problem: "named .gz but is not gzip data (missing 1F 8B magic number)")
        }
        return [UInt8](data)
    }
}
