import Checkpoints
import Engine
import Foundation
import XCTest

/// `$PEFT_ASSETS/<relativePath>`, with PEFT_ASSETS defaulting to `<package root>/assets` (filled by scripts/setup.sh).
func assetURL(_ relativePath: String) -> URL {
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let assets = ProcessInfo.processInfo.environment["PEFT_ASSETS"].map { URL(fileURLWithPath: $0) }
        ?? packageRoot.appendingPathComponent("assets")
    return assets.appendingPathComponent(relativePath)
}

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("checkpoints-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Writes `bytes` to a file called `name` and returns its URL.
    func write(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let target = file(name)
        try Data(bytes).write(to: target)
        return target
    }

    /// Names of the files in the directory, sorted.
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Little-endian bytes of a value.
func leBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// Little-endian bytes of floats.
func leBytes(_ values: [Float]) -> [UInt8] { values.flatMap { leBytes($0.bitPattern) } }

/// A safetensors file made by hand: `header` padded with spaces to a multiple of 8 (unless `pad` is false),
/// preceded by its length (or `declaredLength`), followed by `data`.
func craftSafeTensors(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil, pad: Bool = true) -> [UInt8] {
    var headerBytes = Array(header.utf8)
    if pad { headerBytes += Array(repeating: UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8) }
    return leBytes(declaredLength ?? UInt64(headerBytes.count)) + headerBytes + data
}

/// Asserts that `body` throws a `CheckpointError` whose message contains every string in `mentions`
/// (typically the file path, the tensor name and a word about the problem), and optionally has `kind`.
func assertCheckpointError<T>(
    _ body: @autoclosure () throws -> T, kind: CheckpointError.Kind? = nil, mentions: [String],
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("expected a CheckpointError mentioning \(mentions), but nothing was thrown", file: file, line: line)
    } catch let error as CheckpointError {
        if let kind { XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line) }
        for text in mentions {
            XCTAssertTrue(error.description.contains(text), "'\(error)' does not mention '\(text)'", file: file, line: line)
        }
    } catch {
        XCTFail("expected a CheckpointError, got \(type(of: error)): \(error)", file: file, line: line)
    }
}

/// Minimal protobuf encoder, to build ONNX files for the tests.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }
    mutating func int(_ field: Int, _ value: Int) { tag(field, 0); varint(UInt64(bitPattern: Int64(value))) }
    mutating func data(_ field: Int, _ payload: [UInt8]) { tag(field, 2); varint(UInt64(payload.count)); bytes += payload }
    mutating func string(_ field: Int, _ text: String) { data(field, Array(text.utf8)) }
    mutating func message(_ field: Int, _ inner: ProtoWriter) { data(field, inner.bytes) }
}

/// An ONNX TensorProto of FLOAT values, in raw_data or (when `raw` is false) packed float_data.
func onnxTensor(_ name: String, dims: [Int], values: [Float], raw: Bool = true) -> ProtoWriter {
    var t = ProtoWriter()
    for d in dims { t.int(1, d) }
    t.int(2, 1)
    t.string(8, name)
    if raw { t.data(9, leBytes(values)) } else { t.data(4, leBytes(values)) }
    return t
}

/// An ONNX NodeProto.
func onnxNode(_ name: String, _ opType: String, inputs: [String], outputs: [String] = []) -> ProtoWriter {
    var n = ProtoWriter()
    for i in inputs { n.string(1, i) }
    for o in (outputs.isEmpty ? [name + "_output_0"] : outputs) { n.string(2, o) }
    n.string(3, name)
    n.string(4, opType)
    return n
}

/// An ONNX ModelProto (IR 7, opset 14) whose graph holds `nodes` and `initializers`.
func onnxModel(nodes: [ProtoWriter], initializers: [ProtoWriter]) -> [UInt8] {
    var graph = ProtoWriter()
    for n in nodes { graph.message(1, n) }
    graph.string(2, "test-graph")
    for t in initializers { graph.message(5, t) }
    var opset = ProtoWriter()
    opset.int(2, 14)
    var model = ProtoWriter()
    model.int(1, 7)
    model.string(2, "tests")
    model.message(7, graph)
    model.message(8, opset)
    return model.bytes
}

/// Deterministic pseudo-random numbers (SplitMix64) for garbage inputs and test values.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
