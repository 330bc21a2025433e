/// How a protobuf field's value is encoded (groups, wire types 3 and 4, are obsolete and refused).
enum ProtobufWireType: UInt8 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// A bounds-checked reader of protobuf wire format over a byte range of a mapped file.
///
/// It never reads outside its range and never trusts a length before comparing it with the bytes that are left,
/// so garbage input produces a `CheckpointError(.invalidProtobuf)` naming the file, the message being read and the
/// byte offset, never a crash or a huge allocation. Length-delimited values are returned as ranges of the file,
/// so large payloads (tensor data) are not copied.
struct ProtobufReader {
    /// The whole file (offsets in errors and ranges are relative to its start).
    let bytes: UnsafeRawBufferPointer
    /// The file's path, for errors.
    let path: String
    /// The protobuf message being read (e.g. "TensorProto"), for errors.
    let message: String
    private(set) var position: Int
    let end: Int

    /// A reader of `range` of `bytes`, which holds one `message`.
    init(bytes: UnsafeRawBufferPointer, range: Range<Int>, path: String, message: String) {
        self.bytes = bytes
        self.path = path
        self.message = message
        position = range.lowerBound
        end = range.upperBound
    }

    /// A reader for an embedded message occupying `range` (as returned by `readLengthDelimited`).
    func reader(for range: Range<Int>, message: String) -> ProtobufReader {
        ProtobufReader(bytes: bytes, range: range, path: path, message: message)
    }

    /// An error about the data at the current position.
    func corrupt(_ reason: String, at offset: Int? = nil) -> CheckpointError {
        CheckpointError(.invalidProtobuf, path: path,
            "invalid protobuf in \(message) at byte \(offset ?? position): \(reason)")
    }

    /// The next field's number and wire type, or nil at the end of the message.
    mutating func nextField() throws -> (number: Int, wireType: ProtobufWireType)? {
        guard position < end else { return nil }
        let start = position
        let key = try readVarint()
        let number = key >> 3
        guard number >= 1 && number <= (1 << 29) - 1 else {
            throw corrupt("invalid field number \(number)", at: start)
        }
        guard let wireType = ProtobufWireType(rawValue: UInt8(key & 7)) else {
            throw corrupt("unsupported wire type \(key & 7) for field \(number)", at: start)
        }
        return (Int(number), wireType)
    }

    /// A base-128 varint (at most 10 bytes).
    mutating func readVarint() throws -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw corrupt("truncated varint", at: start) }
            let byte = bytes[position]
            position += 1
            guard shift < 64 else { throw corrupt("varint longer than 10 bytes", at: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A little-endian 4-byte value.
    mutating func readFixed32() throws -> UInt32 {
        guard end - position >= 4 else { throw corrupt("truncated fixed32 value") }
        defer { position += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
    }

    /// A little-endian 8-byte value.
    mutating func readFixed64() throws -> UInt64 {
        guard end - position >= 8 else { throw corrupt("truncated fixed64 value") }
        defer { position += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    /// The byte range of a length-delimited value; its length is checked against the bytes left first.
    mutating func readLengthDelimited() throws -> Range<Int> {
        let start = position
        let length = try readVarint()
        let left = end - position
        guard length <= UInt64(left) else {
            throw corrupt("length \(length) exceeds the \(left) bytes left (truncated or corrupt file)", at: start)
        }
        let range = position..<(position + Int(length))
        position = range.upperBound
        return range
    }

    /// A length-delimited value decoded as UTF-8 text.
    mutating func readString() throws -> String {
        let range = try readLengthDelimited()
        guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self) else {
            throw corrupt("string is not valid UTF-8", at: range.lowerBound)
        }
        return text
    }

    /// Skips a value of `wireType` (for fields this reader does not need).
    mutating func skip(_ wireType: ProtobufWireType) throws {
        switch wireType {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .fixed32: _ = try readFixed32()
        case .lengthDelimited: _ = try readLengthDelimited()
        }
    }

    /// Throws unless the field called `field` arrived with the expected wire type.
    func require(_ wireType: ProtobufWireType, got actual: ProtobufWireType, field: String) throws {
        guard wireType == actual else {
            throw corrupt("field '\(field)' has wire type \(actual.rawValue), expected \(wireType.rawValue)")
        }
    }

    /// Appends a repeated varint field, packed (one length-delimited run) or not.
    mutating func readVarints(_ wireType: ProtobufWireType, field: String, into values: inout [UInt64]) throws {
        switch wireType {
        case .varint:
            values.append(try readVarint())
        case .lengthDelimited:
            let range = try readLengthDelimited()
            var packed = reader(for: range, message: message)
            while packed.position < packed.end { values.append(try packed.readVarint()) }
        default:
            throw corrupt("field '\(field)' has wire type \(wireType.rawValue), expected a varint or packed run")
        }
    }

    /// Appends a repeated fixed-size field (4 or 8 bytes), packed or not, as raw bit patterns.
    mutating func readFixed(
        _ wireType: ProtobufWireType, size: Int, field: String, into values: inout [UInt64]
    ) throws {
        let single: ProtobufWireType = size == 4 ? .fixed32 : .fixed64
        if wireType == single {
            values.append(size == 4 ? UInt64(try readFixed32()) : try readFixed64())
            return
        }
        guard wireType == .lengthDelimited else {
            throw corrupt("field '\(field)' has wire type \(wireType.rawValue), expected \(single.rawValue) or packed")
        }
        let range = try readLengthDelimited()
        guard range.count % size == 0 else {
            throw corrupt("packed field '\(field)' has \(range.count) bytes, not a multiple of \(size)",
                at: range.lowerBound)
        }
        values.reserveCapacity(values.count + range.count / size)
        var packed = reader(for: range, message: message)
        while packed.position < packed.end {
            values.append(size == 4 ? UInt64(try packed.readFixed32()) : try packed.readFixed64())
        }
    }
}
