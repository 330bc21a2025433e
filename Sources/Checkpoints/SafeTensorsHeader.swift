/// Where one tensor lives in a safetensors file, as declared by the header.
public struct SafeTensorInfo: Sendable, Equatable {
    /// The tensor's name (its key in the header).
    public let name: String
    /// The element type stored in the file.
    public let dtype: SafeTensorsDType
    /// Dimensions, outermost first (empty for a scalar).
    public let shape: [Int]
    /// Byte range `[begin, end)` relative to the start of the data buffer (after the header).
    public let dataOffsets: Range<Int>
    /// Number of elements (product of `shape`).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The validated header of a safetensors file: tensor entries sorted by position and the metadata map.
struct SafeTensorsHeader {
    /// Largest header accepted, as in the reference implementation.
    static let maxHeaderBytes = 100_000_000

    var tensors: [SafeTensorInfo] = []
    var metadata: [String: String] = [:]
    /// Offset of the data buffer from the start of the file.
    var bufferStart = 0

    /// Reads and checks the whole layout of `file`: length prefix, JSON header, every entry, and that the entries
    /// tile the data buffer exactly (no overlap, no hole, nothing after the last tensor).
    init(file: MappedFile) throws {
        let path = file.path
        let bytes = file.bytes
        guard bytes.count >= 8 else {
            throw CheckpointError(.truncated, path: path,
                "truncated: file has \(bytes.count) bytes, fewer than the 8-byte header length")
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard declared <= UInt64(Self.maxHeaderBytes) else {
            throw CheckpointError(.invalidHeader, path: path,
                "header length \(declared) bytes exceeds the limit of \(Self.maxHeaderBytes) bytes (100 MB)")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw CheckpointError(.truncated, path: path,
                "truncated: header says \(headerLength) bytes but file has only \(bytes.count - 8) after the length")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        guard let first = headerBytes.first else {
            throw CheckpointError(.invalidHeader, path: path, "header is empty (length 0); it must be a JSON object")
        }
        guard first == UInt8(ascii: "{") else {
            throw CheckpointError(.invalidHeader, path: path,
                "header does not start with '{' (first byte is 0x\(String(first, radix: 16)))")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(headerBytes)
        } catch let e as JSONSyntaxError {
            throw CheckpointError(.invalidHeader, path: path,
                "header is not valid JSON: \(e.message) at byte \(e.offset) of the header")
        }
        guard case .object(let members) = json else {
            throw CheckpointError(.invalidHeader, path: path, "header is JSON \(json.typeName), not an object")
        }
        bufferStart = 8 + headerLength
        let bufferSize = bytes.count - bufferStart
        for (key, value) in members {
            if key == "__metadata__" {
                metadata = try Self.parseMetadata(value, path: path)
            } else {
                tensors.append(try Self.parseEntry(name: key, value, bufferSize: bufferSize, path: path))
            }
        }
        tensors.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
        try Self.checkTiling(tensors, bufferSize: bufferSize, path: path)
    }

    private static func parseMetadata(_ value: JSONValue, path: String) throws -> [String: String] {
        guard case .object(let pairs) = value else {
            throw CheckpointError(.invalidHeader, path: path, "__metadata__ is a JSON \(value.typeName), not an object")
        }
        var metadata: [String: String] = [:]
        for (key, item) in pairs {
            guard case .string(let text) = item else {
                throw CheckpointError(.invalidHeader, path: path,
                    "__metadata__ value for '\(key)' is a JSON \(item.typeName), not a string")
            }
            metadata[key] = text
        }
        return metadata
    }

    private static func parseEntry(name: String, _ value: JSONValue, bufferSize: Int, path: String) throws
        -> SafeTensorInfo
    {
        func fail(_ reason: String) -> CheckpointError {
            CheckpointError(.invalidTensor, path: path, tensor: name, reason)
        }
        guard case .object(let fields) = value else { throw fail("entry is a JSON \(value.typeName), not an object") }
        func field(_ key: String) throws -> JSONValue {
            guard let found = fields.first(where: { $0.key == key }) else { throw fail("entry has no '\(key)'") }
            return found.value
        }
        guard case .string(let dtypeName) = try field("dtype") else { throw fail("'dtype' is not a string") }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw CheckpointError(.unsupportedDtype, path: path, tensor: name,
                "unknown dtype '\(dtypeName)' (known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard case .array(let dims) = try field("shape") else { throw fail("'shape' is not an array") }
        var shape: [Int] = []
        for dim in dims {
            guard let d = dim.nonNegativeInt else { throw fail("'shape' has an entry that is not a non-negative integer") }
            shape.append(d)
        }
        guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2,
            let begin = offsets[0].nonNegativeInt, let end = offsets[1].nonNegativeInt
        else { throw fail("'data_offsets' is not a pair of non-negative integers") }
        guard begin <= end else { throw fail("data_offsets [\(begin), \(end)) end before they begin") }
        guard end <= bufferSize else {
            throw fail("data_offsets [\(begin), \(end)) exceed buffer of \(bufferSize) bytes")
        }
        var elements = 1
        for d in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("shape \(shape) has too many elements") }
            elements = product
        }
        let (bits, overflow) = elements.multipliedReportingOverflow(by: dtype.bitWidth)
        guard !overflow else { throw fail("shape \(shape) has too many elements") }
        guard bits % 8 == 0 else {
            throw fail("shape \(shape) (\(elements) elements of \(dtype.rawValue)) is not a whole number of bytes")
        }
        guard bits / 8 == end - begin else {
            throw fail("shape \(shape) (\(elements) elements of \(dtype.rawValue) = \(bits / 8) bytes) "
                + "but data_offsets [\(begin), \(end)) span \(end - begin) bytes")
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// `sorted` must be ordered by offsets. Reports the first overlap or hole, like the reference reader.
    private static func checkTiling(_ sorted: [SafeTensorInfo], bufferSize: Int, path: String) throws {
        var covered = 0
        var previous: SafeTensorInfo?
        for info in sorted {
            let range = info.dataOffsets
            if range.lowerBound < covered, let previous {
                throw CheckpointError(.invalidTensor, path: path, tensor: info.name,
                    "data_offsets [\(range.lowerBound), \(range.upperBound)) overlap tensor '\(previous.name)' "
                        + "at [\(previous.dataOffsets.lowerBound), \(previous.dataOffsets.upperBound))")
            }
            if range.lowerBound > covered {
                throw CheckpointError(.invalidTensor, path: path, tensor: info.name,
                    "hole in buffer: bytes [\(covered), \(range.lowerBound)) before this tensor belong to no tensor")
            }
            covered = range.upperBound
            previous = info
        }
        if covered != bufferSize {
            throw CheckpointError(.invalidTensor, path: path,
                "hole in buffer: bytes [\(covered), \(bufferSize)) after the last tensor belong to no tensor")
        }
    }
}
