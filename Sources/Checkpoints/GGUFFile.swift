import Engine
import Foundation

/// A GGUF file (llama.cpp's format, versions 2 and 3), memory-mapped and validated as strictly as
/// `SafeTensorsFile`: the magic, version and counts, every string and array length, the value types, the
/// alignment (`general.alignment`, a power of two, else 32), and every tensor's type, shape, offset (aligned,
/// inside the file, not overlapping another) are checked when the file is opened, so a truncated or lying file
/// is refused with an error naming the file and the key or tensor. No count read from the file makes the reader
/// allocate more than the file's own size justifies.
///
///     let file = try GGUFFile(path: "model.gguf")
///     file.metadata["llama.block_count"]?.intValue        // 30
///     let w = try file.tensor("blk.0.attn_q.weight")     // float32 [out, in], dequantised
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    /// 2 or 3.
    public let version: Int
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensors in file order.
    public let tensorInfos: [GGUFTensorInfo]
    /// Alignment of the data section and of every tensor offset.
    public let alignment: Int
    /// Where the data section starts in the file.
    public let dataOffset: Int
    private let infosByName: [String: Int]
    private let file: MappedFile

    /// Nesting limit of metadata arrays (ggml writes at most arrays of arrays).
    static let maximumArrayDepth = 4

    /// Opens and validates `path`.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path, copyOnWrite: false)
        var reader = Reader(bytes: file.bytes, path: path)
        let magic = try reader.bytes(4, what: "the magic")
        guard Array(magic) == Array("GGUF".utf8) else {
            throw CheckpointError(.invalidHeader, path: path, "not a GGUF file (the first bytes are not 'GGUF')")
        }
        let rawVersion = try reader.u32(what: "the version")
        guard rawVersion == 2 || rawVersion == 3 else {
            throw CheckpointError(.invalidHeader, path: path, rawVersion == 1
                ? "GGUF version 1 is not supported (versions 2 and 3 are)"
                : "unsupported GGUF version \(rawVersion) (versions 2 and 3 are; a big-endian file reads as a huge version)")
        }
        version = Int(rawVersion)
        let tensorCount = try reader.count(what: "the tensor count", minimumBytesEach: 24)
        let keyCount = try reader.count(what: "the metadata count", minimumBytesEach: 13)

        var metadata: [String: GGUFValue] = [:], keys: [String] = []
        for index in 0..<keyCount {
            let key = try reader.string(what: "metadata key \(index)")
            guard metadata[key] == nil else {
                throw CheckpointError(.invalidHeader, path: path, "metadata key '\(key)' appears twice")
            }
            let type = try reader.u32(what: "the type of '\(key)'")
            metadata[key] = try reader.value(type: type, key: key, depth: 0)
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard case .uint(let raw) = value, raw > 0, raw <= 1 << 20, raw & (raw - 1) == 0 else {
                throw CheckpointError(.invalidHeader, path: path, "general.alignment is \(value); it must be a power of two up to 2^20")
            }
            alignment = Int(raw)
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = [], byName: [String: Int] = [:]
        infos.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            let name = try reader.string(what: "the name of tensor \(index)")
            guard byName[name] == nil else {
                throw CheckpointError(.invalidTensor, path: path, tensor: name, "appears twice")
            }
            let dimensions = try reader.u32(what: "the rank of '\(name)'")
            guard (1...4).contains(dimensions) else {
                throw CheckpointError(.invalidTensor, path: path, tensor: name, "has \(dimensions) dimensions; ggml tensors have 1 to 4")
            }
            var ne: [Int] = [], elements = 1
            for d in 0..<Int(dimensions) {
                let raw = try reader.u64(what: "dimension \(d) of '\(name)'")
                guard raw >= 1, raw <= UInt64(Int32.max) else {
                    throw CheckpointError(.invalidTensor, path: path, tensor: name, "dimension \(d) is \(raw); it must be in 1...\(Int32.max)")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(raw))
                guard !overflow, product <= file.size else {
                    throw CheckpointError(.invalidTensor, path: path, tensor: name, "its shape holds more elements than the file has bytes")
                }
                elements = product
                ne.append(Int(raw))
            }
            let rawType = try reader.u32(what: "the type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                let known = GGMLType.knownName(rawType).map { "\($0) (type \(rawType)) is not supported yet" } ?? "unknown ggml type \(rawType)"
                throw CheckpointError(.unsupportedDtype, path: path, tensor: name,
                                      "\(known); supported: \(GGMLType.allCases.map(\.name).joined(separator: ", "))")
            }
            guard ne[0] % type.blockElements == 0 else {
                throw CheckpointError(.invalidTensor, path: path, tensor: name,
                                      "its rows of \(ne[0]) elements are not a whole number of \(type.name) blocks of \(type.blockElements)")
            }
            let offset = try reader.u64(what: "the offset of '\(name)'")
            guard offset <= UInt64(file.size), Int(offset) % alignment == 0 else {
                throw CheckpointError(.invalidTensor, path: path, tensor: name,
                                      "offset \(offset) is \(offset > UInt64(file.size) ? "beyond the file" : "not a multiple of the alignment \(alignment)")")
            }
            byName[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, ne: ne, type: type, offset: Int(offset),
                                        byteCount: elements / type.blockElements * type.blockBytes))
        }
        dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        for info in infos {
            let (end, overflow) = (dataOffset + info.offset).addingReportingOverflow(info.byteCount)
            guard !overflow, end <= file.size else {
                throw CheckpointError(.truncated, path: path, tensor: info.name,
                                      "its \(info.byteCount) bytes at data offset \(info.offset) end beyond the file's \(file.size) bytes")
            }
        }
        let sorted = infos.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw CheckpointError(.invalidTensor, path: path, tensor: b.name, "overlaps tensor '\(a.name)'")
        }
        tensorInfos = infos
        infosByName = byName
    }

    /// Tensor names in file order.
    public var names: [String] { tensorInfos.map(\.name) }

    /// The info of tensor `name`, or nil.
    public func info(_ name: String) -> GGUFTensorInfo? { infosByName[name].map { tensorInfos[$0] } }

    /// Tensor `name` dequantised to float32, shaped outermost first (`GGUFTensorInfo.shape`). NaN and infinity
    /// are refused unless `allowNonFinite`, naming the tensor and the first bad element.
    public func tensor(_ name: String, allowNonFinite: Bool = false) throws -> Tensor {
        guard let info = info(name) else {
            throw CheckpointError(.missingTensor, path: path, tensor: name, "not in the file (\(tensorInfos.count) tensors)")
        }
        let result = Tensor(zeros: info.shape)
        guard let base = file.base else { return result }
        info.type.dequantize(UnsafeRawPointer(base) + dataOffset + info.offset, count: info.elementCount, into: result.data)
        if !allowNonFinite, let bad = (0..<info.elementCount).first(where: { !result.data[$0].isFinite }) {
            throw CheckpointError(.nonFinite, path: path, tensor: name, "element \(bad) is \(result.data[bad]) (NaN or infinity)")
        }
        return result
    }

    /// Matrix `name` [out, in] kept in its quantised form, when its type is one the quantised kernels read (Q4_0,
    /// Q4_1, Q8_0); nil for other types (read those with `tensor`). A block with a NaN or infinite scale is refused
    /// naming the tensor.
    public func quantizedMatrix(_ name: String) throws -> QuantizedMatrix? {
        guard let info = info(name) else {
            throw CheckpointError(.missingTensor, path: path, tensor: name, "not in the file (\(tensorInfos.count) tensors)")
        }
        let format: QuantizedMatrix.Format
        switch info.type {
        case .q4_0: format = .q4_0
        case .q4_1: format = .q4_1
        case .q8_0: format = .q8_0
        default: return nil
        }
        guard info.ne.count == 2, let base = file.base else { return nil }
        let matrix: QuantizedMatrix
        do {
            matrix = try QuantizedMatrix(format: format, rows: info.ne[1], columns: info.ne[0],
                                         bytes: UnsafeRawBufferPointer(start: UnsafeRawPointer(base) + dataOffset + info.offset, count: info.byteCount))
        } catch {
            throw CheckpointError(.invalidArgument, path: path, tensor: name, "\(error)")
        }
        if let bad = matrix.firstNonFiniteBlock() {
            throw CheckpointError(.nonFinite, path: path, tensor: name, "block \(bad) has a NaN or infinite scale")
        }
        return matrix
    }

    /// A cursor over the header bytes; every read checks the bytes left.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var offset = 0

        var remaining: Int { bytes.count - offset }

        func truncated(_ what: String) -> CheckpointError {
            CheckpointError(.truncated, path: path, "the file ends inside \(what) (at byte \(offset) of \(bytes.count))")
        }

        mutating func bytes(_ count: Int, what: String) throws -> UnsafeRawBufferPointer {
            guard count >= 0, count <= remaining else { throw truncated(what) }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        }

        mutating func load<T: FixedWidthInteger>(_ type: T.Type, what: String) throws -> T {
            let raw = try bytes(MemoryLayout<T>.size, what: what)
            return T(littleEndian: raw.loadUnaligned(as: T.self))
        }

        mutating func u32(what: String) throws -> UInt32 { try load(UInt32.self, what: what) }
        mutating func u64(what: String) throws -> UInt64 { try load(UInt64.self, what: what) }

        /// A count of items that each take at least `minimumBytesEach` bytes of what is left.
        mutating func count(what: String, minimumBytesEach: Int) throws -> Int {
            let raw = try u64(what: what)
            guard raw <= UInt64(remaining / max(1, minimumBytesEach)) else {
                throw CheckpointError(.invalidHeader, path: path, "\(what) is \(raw), more than the \(remaining) bytes left can hold")
            }
            return Int(raw)
        }

        mutating func string(what: String) throws -> String {
            let length = try u64(what: "the length of \(what)")
            guard length <= UInt64(remaining) else { throw truncated(what) }
            let raw = try bytes(Int(length), what: what)
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw CheckpointError(.invalidHeader, path: path, "\(what) is not valid UTF-8")
            }
            return text
        }

        /// A metadata value of GGUF type `type` (0...12).
        mutating func value(type: UInt32, key: String, depth: Int) throws -> GGUFValue {
            let what = "the value of '\(key)'"
            switch type {
            case 0: return .uint(UInt64(try load(UInt8.self, what: what)))
            case 1: return .int(Int64(try load(Int8.self, what: what)))
            case 2: return .uint(UInt64(try load(UInt16.self, what: what)))
            case 3: return .int(Int64(try load(Int16.self, what: what)))
            case 4: return .uint(UInt64(try load(UInt32.self, what: what)))
            case 5: return .int(Int64(try load(Int32.self, what: what)))
            case 6: return .float(Double(Float(bitPattern: try load(UInt32.self, what: what))))
            case 7:
                let raw = try load(UInt8.self, what: what)
                guard raw <= 1 else { throw CheckpointError(.invalidHeader, path: path, "'\(key)' is a boolean stored as \(raw) (0 or 1 expected)") }
                return .bool(raw == 1)
            case 8: return .string(try string(what: what))
            case 9:
                guard depth < GGUFFile.maximumArrayDepth else {
                    throw CheckpointError(.invalidHeader, path: path, "'\(key)' nests arrays deeper than \(GGUFFile.maximumArrayDepth)")
                }
                let elementType = try u32(what: "the element type of '\(key)'")
                let minimum: Int
                switch elementType {
                case 0, 1, 7: minimum = 1
                case 2, 3: minimum = 2
                case 4, 5, 6: minimum = 4
                case 8, 10, 11, 12: minimum = 8
                case 9: minimum = 12
                default: throw CheckpointError(.invalidHeader, path: path, "'\(key)' is an array of unknown type \(elementType)")
                }
                let count = try self.count(what: "the length of '\(key)'", minimumBytesEach: minimum)
                var values: [GGUFValue] = []
                values.reserveCapacity(count)
                for _ in 0..<count { values.append(try value(type: elementType, key: key, depth: depth + 1)) }
                return .array(values)
            case 10: return .uint(try load(UInt64.self, what: what))
            case 11: return .int(try load(Int64.self, what: what))
            case 12: return .float(Double(bitPattern: try load(UInt64.self, what: what)))
            default:
                throw CheckpointError(.invalidHeader, path: path, "'\(key)' has unknown value type \(type)")
            }
        }
    }
}
