import Foundation

/// Reads a dataset file's bytes, decompressing it when it is gzipped.
enum DataFileBytes {
    /// The bytes of `url`, gunzipped when the file starts with the gzip magic number (whatever its extension).
    ///
    /// - Throws: ``DataReaderError`` naming the file when it is missing, unreadable or corrupt.
    static func read(_ url: URL, outputLimit: Int = Gzip.defaultOutputLimit) throws -> [UInt8] {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataReaderError(file: path, problem: "file not found")
        }
        guard !isDirectory.boolValue else { throw DataReaderError(file: path, problem: "is a directory, not a file") }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw DataReaderError(file: path, problem: "cannot be read (\(error.localizedDescription))")
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
