import Foundation

/// Decompression of gzip files (RFC 1952) with the Swift ``Inflater``: header flags, CRC-32 and length
/// checks, and concatenated members.
public enum Gzip {
    /// Default cap on the decompressed size (1 GiB), protecting against corrupt or hostile size fields.
    public static let defaultOutputLimit = 1 << 30

    /// True when `bytes` start with the gzip magic number 1F 8B.
    public static func hasGzipMagic<Bytes: Collection>(_ bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        var iterator = bytes.makeIterator()
        return iterator.next() == 0x1F && iterator.next() == 0x8B
    }

    /// Decompresses a whole gzip file already in memory.
    ///
    /// - Parameters:
    ///   - data: the file's bytes.
    ///   - name: the file's path or name, used in error messages.
    ///   - outputLimit: maximum total decompressed size.
    /// - Throws: ``DataReaderError`` naming `name` for a bad header, corrupt or truncated data, a CRC-32 or
    ///   length mismatch, trailing garbage, or output above `outputLimit`.
    public static func decompress(_ data: Data, name: String, outputLimit: Int = defaultOutputLimit) throws -> [UInt8] {
        try data.withUnsafeBytes { raw in
            try decompress(raw.bindMemory(to: UInt8.self), name: name, outputLimit: outputLimit)
        }
    }

    /// Decompresses gzip bytes held in an array; same checks and errors as the `Data` variant.
    public static func decompress(_ bytes: [UInt8], name: String, outputLimit: Int = defaultOutputLimit) throws -> [UInt8] {
        try bytes.withUnsafeBufferPointer { try decompress($0, name: name, outputLimit: outputLimit) }
    }

    static func decompress(_ input: UnsafeBufferPointer<UInt8>, name: String, outputLimit: Int) throws -> [UInt8] {
        func failure(_ problem: String) -> DataReaderError {
            DataReaderError(file: name, problem: "corrupt gzip data: \(problem)")
        }
        guard hasGzipMagic(input) else {
            throw DataReaderError(file: name, problem: "not a gzip file (missing 1F 8B magic number)")
        }
        var result: [UInt8] = []
        var position = 0
        var member = 0
        while position < input.count {
            member += 1
            let remainder = UnsafeBufferPointer(rebasing: input[position...])
            if member > 1 {
                if remainder.allSatisfy({ $0 == 0 }) { break }  // zero padding after the last member
                guard hasGzipMagic(remainder) else { throw failure("unexpected data after member \(member - 1)") }
            }
            let dataStart: Int
            do {
                dataStart = try headerLength(remainder)
            } catch let problem as GzipHeaderProblem {
                throw failure(problem.text)
            }
            // The last member's size field sizes the first allocation, within what DEFLATE can expand to.
            let sizeHint = input.count >= 4 ? Int(littleEndianUInt32(input, at: input.count - 4)) : 0
            let decoded: (output: [UInt8], end: Int)
            do {
                decoded = try Inflater.inflate(remainder, from: dataStart,
                                               sizeHint: min(sizeHint, remainder.count.multipliedReportingOverflow(by: 1032).partialValue),
                                               limit: outputLimit - result.count)
            } catch let problem as InflateFailure {
                throw failure(problem.description)
            }
            guard decoded.end + 8 <= remainder.count else { throw failure("truncated trailer (CRC-32 and size)") }
            let storedCRC = littleEndianUInt32(remainder, at: decoded.end)
            let storedSize = littleEndianUInt32(remainder, at: decoded.end + 4)
            let actualCRC = CRC32.checksum(decoded.output)
            guard storedCRC == actualCRC else {
                throw failure(String(format: "CRC-32 mismatch (stored %08x, computed %08x)", storedCRC, actualCRC))
            }
            guard storedSize == UInt32(truncatingIfNeeded: decoded.output.count) else {
                throw failure("size mismatch (stored \(storedSize), decoded \(decoded.output.count) bytes)")
            }
            if result.isEmpty { result = decoded.output } else { result.append(contentsOf: decoded.output) }
            position += decoded.end + 8
        }
        return result
    }

    /// A problem in a member header, turned into a ``DataReaderError`` by the caller.
    private struct GzipHeaderProblem: Error {
        let text: String
    }

    /// Length of the member header at the start of `bytes` (fixed part plus optional fields).
    private static func headerLength(_ bytes: UnsafeBufferPointer<UInt8>) throws -> Int {
        guard bytes.count >= 10 else { throw GzipHeaderProblem(text: "truncated header") }
        guard bytes[2] == 8 else { throw GzipHeaderProblem(text: "unsupported compression method \(bytes[2])") }
        let flags = bytes[3]
        guard flags & 0xE0 == 0 else { throw GzipHeaderProblem(text: "reserved header flags set") }
        var position = 10
        if flags & 0x04 != 0 {  // FEXTRA
            guard position + 2 <= bytes.count else { throw GzipHeaderProblem(text: "truncated extra field") }
            let length = Int(bytes[position]) | Int(bytes[position + 1]) << 8
            position += 2
            guard length <= bytes.count - position else { throw GzipHeaderProblem(text: "truncated extra field") }
            position += length
        }
        for (flag, field) in [(UInt8(0x08), "file name"), (UInt8(0x10), "comment")] where flags & flag != 0 {
            while position < bytes.count && bytes[position] != 0 { position += 1 }
            guard position < bytes.count else { throw GzipHeaderProblem(text: "unterminated \(field)") }
            position += 1
        }
        if flags & 0x02 != 0 {  // FHCRC: low 16 bits of the CRC-32 of the header so far
            guard position + 2 <= bytes.count else { throw GzipHeaderProblem(text: "truncated header CRC") }
            let stored = UInt16(bytes[position]) | UInt16(bytes[position + 1]) << 8
            let actual = UInt16(truncatingIfNeeded: CRC32.checksum(UnsafeBufferPointer(rebasing: bytes[0..<position])))
            guard stored == actual else { throw GzipHeaderProblem(text: "header CRC mismatch") }
            position += 2
        }
        return position
    }

    private static func littleEndianUInt32(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> UInt32 {
        UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
    }
}
