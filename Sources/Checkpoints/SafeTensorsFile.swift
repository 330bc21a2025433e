import Engine
import Foundation

/// A safetensors file, memory-mapped and fully validated when opened.
///
/// ```swift
/// let file = try SafeTensorsFile(path: "model.safetensors")
/// let w = try file.tensor("encoder.layer.0.mlp.fc1.weight")   // float32, whatever the stored dtype
/// ```
/// Aligned F32 tensors are not copied: their `Tensor` borrows the mapping, which stays alive as long as any such
/// tensor does. The mapping is copy-on-write, so such tensors may be modified in memory; the file never changes.
/// Every other convertible dtype (F16, BF16, F64, integers, BOOL) is converted into a new float32 tensor.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The file's path, as given.
    public let path: String
    /// Tensor names, in the order their data appears in the file.
    public let names: [String]
    /// The `__metadata__` map (empty when absent).
    public let metadata: [String: String]

    private let file: MappedFile
    private let bufferStart: Int
    private let infos: [String: SafeTensorInfo]

    /// Opens, maps and validates the file at `path`. Throws a `CheckpointError` naming the file (and the tensor,
    /// for a bad entry) if anything in the layout is wrong.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path, copyOnWrite: true)
        let header = try SafeTensorsHeader(file: file)
        bufferStart = header.bufferStart
        metadata = header.metadata
        names = header.tensors.map(\.name)
        infos = Dictionary(uniqueKeysWithValues: header.tensors.map { ($0.name, $0) })
    }

    /// Opens the file at `path` with every tensor known by `rename(name)` instead of its stored name (e.g. other
    /// libraries' module names read as ours). Throws when two stored names get the same new name.
    public init(path: String, renaming rename: (String) -> String) throws {
        self.path = path
        file = try MappedFile(path: path, copyOnWrite: true)
        let header = try SafeTensorsHeader(file: file)
        bufferStart = header.bufferStart
        metadata = header.metadata
        var renamed: [String: SafeTensorInfo] = [:], order: [String] = []
        for info in header.tensors {
            let name = rename(info.name)
            guard renamed[name] == nil else {
                throw CheckpointError(.invalidTensor, path: path, tensor: info.name, "it names the same tensor as another one ('\(name)')")
            }
            renamed[name] = info
            order.append(name)
        }
        names = order
        infos = renamed
    }

    /// Opens the file at `url` (see `init(path:)`).
    public convenience init(url: URL) throws { try self.init(path: url.path) }

    /// The dtype, shape and offsets of `name`, or nil if the file has no such tensor.
    public func info(_ name: String) -> SafeTensorInfo? { infos[name] }

    /// The name `name` is stored under in the file (differs from `name` in a renaming view); for error messages.
    public func storedName(_ name: String) -> String { infos[name]?.name ?? name }

    /// Whether the file has a tensor called `name`.
    public func contains(_ name: String) -> Bool { infos[name] != nil }

    /// Whether `tensor(name)` returns a zero-copy view of the mapping (F32 data aligned to 4 bytes).
    public func isZeroCopy(_ name: String) -> Bool {
        guard let info = infos[name], info.dtype == .f32, info.elementCount > 0 else { return false }
        #if _endian(little)
        return (bufferStart + info.dataOffsets.lowerBound) % MemoryLayout<Float>.alignment == 0
        #else
        return false
        #endif
    }

    /// The tensor `name` as float32 (zero-copy when possible, see `isZeroCopy`); its `name` is set.
    /// Throws if the file has no such tensor, its dtype cannot be converted to float32, or (unless
    /// `allowNonFinite`) it holds a NaN or an infinity: weights like that only ever give wrong answers.
    public func tensor(_ name: String, allowNonFinite: Bool = false) throws -> Tensor {
        let info = try lookUp(name)
        guard info.dtype.convertsToFloat32 else {
            throw CheckpointError(.unsupportedDtype, path: path, tensor: storedName(name),
                "dtype \(info.dtype.rawValue) cannot be converted to float32 (supported: "
                    + SafeTensorsDType.allCases.filter(\.convertsToFloat32).map(\.rawValue).joined(separator: ", ") + ")")
        }
        let source = dataPointer(info)
        let result: Tensor
        if isZeroCopy(name) {
            let floats = UnsafeMutableRawPointer(mutating: source).bindMemory(to: Float.self, capacity: info.elementCount)
            let storage = TensorStorage(borrowing: floats, count: info.elementCount, owner: file)
            result = Tensor(shape: info.shape, storage: storage)
        } else {
            result = Tensor(uninitialized: info.shape)
            _ = convertToFloat32(info.dtype, from: source, count: info.elementCount, into: result.data)
        }
        result.name = name
        if !allowNonFinite, let bad = firstNonFinite(result.data, count: info.elementCount) {
            throw CheckpointError(.nonFinite, path: path, tensor: storedName(name),
                "element \(bad) of \(info.elementCount) is \(result.data[bad]) (NaN or infinity); refusing weights that are not finite")
        }
        return result
    }

    /// Every tensor, by name, as float32. Throws on the first tensor that cannot be converted or (unless
    /// `allowNonFinite`) holds a NaN or infinity.
    public func loadAll(allowNonFinite: Bool = false) throws -> [String: Tensor] {
        var all: [String: Tensor] = [:]
        all.reserveCapacity(names.count)
        for name in names { all[name] = try tensor(name, allowNonFinite: allowNonFinite) }
        return all
    }

    /// Index of the first NaN or infinity among `count` floats, or nil. Scans 16 lanes at a time (x * 0 is
    /// 0 for every finite x and NaN otherwise).
    private func firstNonFinite(_ values: UnsafeMutablePointer<Float>, count: Int) -> Int? {
        var i = 0
        while i + 16 <= count {
            let lanes = UnsafeRawPointer(values + i).loadUnaligned(as: SIMD16<Float>.self)
            if any((lanes * 0) .!= 0) { break }
            i += 16
        }
        while i < count {
            if !values[i].isFinite { return i }
            i += 1
        }
        return nil
    }

    /// The elements of integer tensor `name` (any integer or BOOL dtype) as Int64, e.g. indices.
    public func int64Values(_ name: String) throws -> [Int64] {
        let info = try lookUp(name)
        guard info.dtype.isInteger else {
            throw CheckpointError(.unsupportedDtype, path: path, tensor: storedName(name),
                "dtype \(info.dtype.rawValue) is not an integer type; integer values were asked for")
        }
        let source = dataPointer(info)
        var values: [Int64] = []
        values.reserveCapacity(info.elementCount)
        for i in 0..<info.elementCount {
            guard let v = integerElement(info.dtype, source, i) else {
                throw CheckpointError(.invalidTensor, path: path, tensor: storedName(name),
                    "element \(i) does not fit in a signed 64-bit integer")
            }
            values.append(v)
        }
        return values
    }

    /// The elements of integer tensor `name` (I32, or another integer dtype whose values all fit) as Int32,
    /// e.g. SHiRA's `[2, nnz]` indices.
    public func int32Values(_ name: String) throws -> [Int32] {
        let wide = try int64Values(name)
        var values: [Int32] = []
        values.reserveCapacity(wide.count)
        for (i, v) in wide.enumerated() {
            guard let narrow = Int32(exactly: v) else {
                throw CheckpointError(.invalidTensor, path: path, tensor: storedName(name),
                    "element \(i) = \(v) does not fit in a 32-bit integer")
            }
            values.append(narrow)
        }
        return values
    }

    private func lookUp(_ name: String) throws -> SafeTensorInfo {
        guard let info = infos[name] else {
            let sample = names.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            throw CheckpointError(.missingTensor, path: path, tensor: name,
                "no such tensor in this file (it has \(names.count): \(sample)\(names.count > 5 ? ", ..." : ""))")
        }
        return info
    }

    private func dataPointer(_ info: SafeTensorInfo) -> UnsafeRawPointer {
        // A zero-byte tensor may sit at the very end of an empty buffer; any valid address will do then.
        guard let base = file.base else { return UnsafeRawPointer(bitPattern: 64)! }
        return UnsafeRawPointer(base) + bufferStart + info.dataOffsets.lowerBound
    }
}
