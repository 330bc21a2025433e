import Engine
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An int32 tensor to save next to float tensors (e.g. SHiRA indices), row-major.
public struct Int32Tensor: Sendable, Equatable {
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// `shape.reduce(1, *)` elements.
    public let values: [Int32]
    /// Pairs `values` with `shape`; the writer checks that their sizes agree.
    public init(shape: [Int], values: [Int32]) {
        self.shape = shape
        self.values = values
    }
}

/// Writing safetensors files.
public enum SafeTensors {
    /// Writes float32 `tensors` (as F32) and `int32` tensors (as I32) with `metadata` to `url`, atomically.
    ///
    /// The layout follows the reference writer: tensors ordered by dtype size (largest first) then name, header
    /// padded with spaces to a multiple of 8 bytes, so every tensor is naturally aligned. The data goes to a
    /// temporary file in the same directory, which is flushed to disk (fsync) and then renamed over `url`: readers
    /// see either the old file or the complete new one, never a partial file.
    public static func write(
        _ tensors: [String: Tensor], int32: [String: Int32Tensor] = [:], metadata: [String: String] = [:],
        to url: URL
    ) throws {
        try write(tensors.map { ($0.key, $0.value) }, int32: int32.map { ($0.key, $0.value) }, metadata: metadata,
            to: url)
    }

    /// Same as the dictionary form, from lists of (name, tensor); names must be unique across both lists.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)], int32: [(name: String, tensor: Int32Tensor)] = [],
        metadata: [String: String] = [:], to url: URL
    ) throws {
        let path = url.path
        var entries: [PendingTensor] = []
        for (name, tensor) in tensors {
            entries.append(PendingTensor(name: name, dtype: .f32, shape: tensor.shape, byteCount: tensor.count * 4) {
                try $0.write(UnsafeRawBufferPointer(tensor.buffer))
            })
        }
        for (name, tensor) in int32 {
            let expected = tensor.shape.reduce(1, *)
            guard tensor.shape.allSatisfy({ $0 >= 0 }), expected == tensor.values.count else {
                throw CheckpointError(.invalidArgument, path: path, tensor: name,
                    "int32 tensor of shape \(tensor.shape) needs \(expected) values but has \(tensor.values.count)")
            }
            entries.append(PendingTensor(name: name, dtype: .i32, shape: tensor.shape, byteCount: expected * 4) { out in
                let littleEndian = tensor.values.map { $0.littleEndian }
                try littleEndian.withUnsafeBytes { try out.write($0) }
            })
        }
        var seen = Set<String>()
        for entry in entries {
            guard !entry.name.isEmpty, entry.name != "__metadata__" else {
                throw CheckpointError(.invalidArgument, path: path, tensor: entry.name, "reserved or empty tensor name")
            }
            guard seen.insert(entry.name).inserted else {
                throw CheckpointError(.invalidArgument, path: path, tensor: entry.name, "tensor name given twice")
            }
        }
        entries.sort { a, b in
            a.dtype.bitWidth != b.dtype.bitWidth ? a.dtype.bitWidth > b.dtype.bitWidth : a.name < b.name
        }
        let header = headerBytes(entries, metadata: metadata)
        try AtomicFileWriter.write(to: url) { out in
            try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try out.write($0) }
            try header.withUnsafeBytes { try out.write($0) }
            for entry in entries { try entry.writeData(out) }
        }
    }

    /// One tensor waiting to be written: its header entry and how to produce its bytes.
    private struct PendingTensor {
        let name: String
        let dtype: SafeTensorsDType
        let shape: [Int]
        let byteCount: Int
        let writeData: (AtomicFileWriter) throws -> Void
    }

    /// The JSON header, padded with spaces to a multiple of 8 bytes.
    private static func headerBytes(_ entries: [PendingTensor], metadata: [String: String]) -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { jsonQuoted($0.key) + ":" + jsonQuoted($0.value) }
            parts.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for entry in entries {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            parts.append(jsonQuoted(entry.name) + ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(offset),\(offset + entry.byteCount)]}")
            offset += entry.byteCount
        }
        var bytes = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8))
        return bytes
    }
}
