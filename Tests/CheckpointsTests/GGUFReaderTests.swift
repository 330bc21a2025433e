import Checkpoints
import Engine
import Foundation
import XCTest

/// The GGUF reader against a file written by the `gguf` Python package (scripts/reference/make_gguf_fixtures.py),
/// whose own dequantisation gives the expected values; and against every way a header can lie.
final class GGUFReaderTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let small = fixtures.appendingPathComponent("small.gguf")

    struct Expected: Decodable {
        struct Entry: Decodable { let type: String; let ne: [Int]; let values: [Float] }
        let tensors: [String: Entry]
    }

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("small.expected.json")))
    }

    func testMetadataOfEveryTypeReadsAsGGUFWroteIt() throws {
        let file = try GGUFFile(path: Self.small.path)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        let m = file.metadata
        XCTAssertEqual(m["general.architecture"], .string("llama"))
        XCTAssertEqual(m["test.u8"], .uint(200))
        XCTAssertEqual(m["test.i8"], .int(-100))
        XCTAssertEqual(m["test.u16"], .uint(60000))
        XCTAssertEqual(m["test.i16"], .int(-30000))
        XCTAssertEqual(m["test.u32"], .uint(4_000_000_000))
        XCTAssertEqual(m["test.i32"], .int(-2_000_000_000))
        XCTAssertEqual(m["test.f32"], .float(0.15625))
        XCTAssertEqual(m["test.bool"], .bool(true))
        XCTAssertEqual(m["test.string"], .string("héllo, GGUF"))
        XCTAssertEqual(m["test.u64"], .uint(18_000_000_000_000_000_000))
        XCTAssertEqual(m["test.i64"], .int(-9_000_000_000_000_000_000))
        XCTAssertEqual(m["test.f64"], .float(-2.5e-300))
        XCTAssertEqual(m["test.array_i32"], .array([.int(1), .int(-2), .int(3)]))
        XCTAssertEqual(m["test.array_strings"], .array([.string("a"), .string("bc"), .string("")]))
        XCTAssertEqual(m["test.array_f32"], .array([.float(0.5), .float(-1.25)]))
        XCTAssertEqual(file.metadataKeys.first, "general.architecture")
    }

    func testEveryTensorTypeDequantisesExactlyAsGGUFDoes() throws {
        let file = try GGUFFile(path: Self.small.path)
        let reference = try expected()
        XCTAssertEqual(Set(file.names), Set(reference.tensors.keys))
        for (name, entry) in reference.tensors {
            let info = try XCTUnwrap(file.info(name))
            XCTAssertEqual(info.type.name, entry.type, name)
            XCTAssertEqual(info.ne, entry.ne, name)
            let tensor = try file.tensor(name)
            XCTAssertEqual(tensor.shape, entry.ne.reversed(), name)
            XCTAssertEqual(tensor.values, entry.values, "\(name) (\(entry.type)) differs from gguf's dequantisation")
        }
        // The quantised ones are close to, not equal to, what was quantised: a sanity check that they are real.
        XCTAssertNotEqual(Set(try file.tensor("q4_0").values).count, 1)
    }

    func testQuantisedMatricesHoldTheValuesGGUFDequantisesTo() throws {
        let file = try GGUFFile(path: Self.small.path)
        let reference = try expected()
        for name in ["q4_0", "q4_1", "q8_0"] {
            let entry = try XCTUnwrap(reference.tensors[name])
            let matrix = try XCTUnwrap(try file.quantizedMatrix(name), name)
            XCTAssertEqual([matrix.rows, matrix.columns], entry.ne.reversed(), name)
            XCTAssertEqual(matrix.format.description, entry.type)
            for set in KernelSet.available {
                let values = ExecutionContext.with({ $0.kernels = set }) { matrix.dequantized().values }
                XCTAssertEqual(values, entry.values, "\(name) with \(set)")
            }
        }
        XCTAssertNil(try file.quantizedMatrix("f32"), "float tensors are not kept quantised")
        XCTAssertThrowsError(try file.quantizedMatrix("absent")) { XCTAssertTrue("\($0)".contains("absent"), "\($0)") }
    }

    // MARK: Hostile headers

    /// A minimal GGUF v3 file built by hand: metadata entries and tensors given as raw parts.
    struct Builder {
        var version: UInt32 = 3
        var keyValues: [[UInt8]] = []
        var tensors: [[UInt8]] = []
        var tensorCount: UInt64?
        var keyCount: UInt64?
        var data: [UInt8] = []

        static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        static func string(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

        static func tensor(_ name: String, ne: [UInt64], type: UInt32, offset: UInt64) -> [UInt8] {
            string(name) + u32(UInt32(ne.count)) + ne.flatMap(u64) + u32(type) + u64(offset)
        }

        func bytes() -> [UInt8] {
            var header = Array("GGUF".utf8) + Self.u32(version) + Self.u64(tensorCount ?? UInt64(tensors.count))
                + Self.u64(keyCount ?? UInt64(keyValues.count)) + keyValues.flatMap { $0 } + tensors.flatMap { $0 }
            while header.count % 32 != 0 { header.append(0) }
            return header + data
        }
    }

    func assertRefused(_ bytes: [UInt8], mentions text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = try directory.write("bad.gguf", bytes)
        XCTAssertThrowsError(try GGUFFile(path: url.path), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(url.path) && message.contains(text), "expected '\(text)' in: \(message)", file: file, line: line)
        }
    }

    func testValidHandBuiltFileReads() throws {
        var builder = Builder()
        builder.tensors = [Builder.tensor("w", ne: [2, 2], type: 0, offset: 0)]
        builder.data = [Float(1), 2, 3, 4].flatMap { Builder.u32($0.bitPattern) }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = try directory.write("ok.gguf", builder.bytes())
        let file = try GGUFFile(path: url.path)
        XCTAssertEqual(try file.tensor("w").values, [1, 2, 3, 4])
        XCTAssertEqual(try file.tensor("w").shape, [2, 2])
        XCTAssertThrowsError(try file.tensor("missing")) { XCTAssertTrue("\($0)".contains("'missing'")) }
    }

    func testLyingOrTruncatedHeadersAreRefusedNamingWhatIsWrong() throws {
        func valid() -> Builder {
            var builder = Builder()
            builder.tensors = [Builder.tensor("w", ne: [2, 2], type: 0, offset: 0)]
            builder.data = [Float](repeating: 1, count: 4).flatMap { Builder.u32($0.bitPattern) }
            return builder
        }
        try assertRefused(Array("GGML".utf8) + [UInt8](repeating: 0, count: 20), mentions: "not a GGUF file")
        var b = valid(); b.version = 1
        try assertRefused(b.bytes(), mentions: "version 1 is not supported")
        b = valid(); b.version = 0x0300_0000
        try assertRefused(b.bytes(), mentions: "big-endian")
        b = valid(); b.tensorCount = 1 << 60
        try assertRefused(b.bytes(), mentions: "the tensor count")
        b = valid(); b.keyCount = 1 << 40
        try assertRefused(b.bytes(), mentions: "the metadata count")
        // Truncated anywhere in the header.
        let whole = valid().bytes()
        for cut in [6, 14] { try assertRefused(Array(whole.prefix(cut)), mentions: "ends inside") }
        // Cut after the counts: the tensor count is more than the bytes left can hold.
        for cut in [20, 30] { try assertRefused(Array(whole.prefix(cut)), mentions: "the tensor count is 1, more than the") }
        try assertRefused(Array(whole.prefix(40)), mentions: "ends inside")
        // Data shorter than the tensor.
        try assertRefused(Array(whole.dropLast(4)), mentions: "end beyond the file")
        // A string length beyond the file, invalid UTF-8, an unknown value type, a bad boolean, deep arrays.
        b = valid(); b.keyValues = [Builder.u64(1 << 50) + Array("k".utf8)]
        try assertRefused(b.bytes(), mentions: "ends inside")
        b = valid(); b.keyValues = [Builder.u64(2) + [0xC3, 0x28] + Builder.u32(4) + Builder.u32(1)]
        try assertRefused(b.bytes(), mentions: "not valid UTF-8")
        b = valid(); b.keyValues = [Builder.string("k") + Builder.u32(13) + Builder.u32(0)]
        try assertRefused(b.bytes(), mentions: "unknown value type 13")
        b = valid(); b.keyValues = [Builder.string("k") + Builder.u32(7) + [2]]
        try assertRefused(b.bytes(), mentions: "boolean stored as 2")
        b = valid(); b.keyValues = [Builder.string("k") + Builder.u32(9) + Builder.u32(4) + Builder.u64(1 << 40)]
        try assertRefused(b.bytes(), mentions: "the length of 'k'")
        var nested = Builder.u32(4) + Builder.u64(0)
        for _ in 0..<6 { nested = Builder.u32(9) + Builder.u64(1) + nested }
        b = valid(); b.keyValues = [Builder.string("k") + Builder.u32(9) + nested]
        try assertRefused(b.bytes(), mentions: "nests arrays deeper")
        b = valid(); b.keyValues = [Builder.string("k") + Builder.u32(4) + Builder.u32(1), Builder.string("k") + Builder.u32(4) + Builder.u32(2)]
        try assertRefused(b.bytes(), mentions: "'k' appears twice")
        b = valid(); b.keyValues = [Builder.string("general.alignment") + Builder.u32(4) + Builder.u32(48)]
        try assertRefused(b.bytes(), mentions: "power of two")
        // Tensors: rank, zero or huge dimensions, unknown and unsupported types, blocks, offsets, overlaps.
        b = valid(); b.tensors = [Builder.tensor("w", ne: [1, 1, 1, 1, 1], type: 0, offset: 0)]
        try assertRefused(b.bytes(), mentions: "5 dimensions")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [2, 0], type: 0, offset: 0)]
        try assertRefused(b.bytes(), mentions: "dimension 1 is 0")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [1 << 30, 1 << 30], type: 0, offset: 0)]
        try assertRefused(b.bytes(), mentions: "more elements than the file has bytes")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [2, 2], type: 99, offset: 0)]
        try assertRefused(b.bytes(), mentions: "unknown ggml type 99")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [32], type: 13, offset: 0)]
        try assertRefused(b.bytes(), mentions: "Q5_K (type 13) is not supported yet")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [16, 2], type: 8, offset: 0)]
        try assertRefused(b.bytes(), mentions: "not a whole number of Q8_0 blocks")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [2, 2], type: 0, offset: 8)]
        try assertRefused(b.bytes(), mentions: "not a multiple of the alignment 32")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [2, 2], type: 0, offset: 1 << 40)]
        try assertRefused(b.bytes(), mentions: "beyond the file")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [16], type: 0, offset: 0), Builder.tensor("v", ne: [2], type: 0, offset: 32)]
        b.data = [UInt8](repeating: 0, count: 64)
        try assertRefused(b.bytes(), mentions: "overlaps tensor 'w'")
        b = valid(); b.tensors = [Builder.tensor("w", ne: [2], type: 0, offset: 0), Builder.tensor("w", ne: [2], type: 0, offset: 0)]
        try assertRefused(b.bytes(), mentions: "appears twice")
    }

    func testRandomCorruptionNeverCrashes() throws {
        let original = [UInt8](try Data(contentsOf: Self.small))
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var generator = RandomGenerator(seed: 17)
        var opened = 0
        for round in 0..<300 {
            var bytes = original
            // Corrupt 1-4 bytes of the header (where the counts, lengths, types and offsets are), or truncate.
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                bytes[Int(generator.next() % UInt64(min(bytes.count, 900)))] = UInt8(truncatingIfNeeded: generator.next())
            }
            if round % 5 == 0 { bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count)))) }
            let url = try directory.write("fuzz.gguf", bytes)
            guard let file = try? GGUFFile(path: url.path) else { continue }
            opened += 1
            for name in file.names { _ = try? file.tensor(name, allowNonFinite: true) }
        }
        XCTAssertGreaterThan(opened, 0, "some corruptions leave a readable file (values or unused bytes)")
    }

    func testNonFiniteValuesAreRefusedNamingTheTensor() throws {
        var builder = Builder()
        builder.tensors = [Builder.tensor("w", ne: [2], type: 0, offset: 0)]
        builder.data = [Float(1), .nan].flatMap { Builder.u32($0.bitPattern) }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = try directory.write("nan.gguf", builder.bytes())
        let file = try GGUFFile(path: url.path)
        XCTAssertThrowsError(try file.tensor("w")) { XCTAssertTrue("\($0)".contains("tensor 'w': element 1")) }
        XCTAssertTrue(try file.tensor("w", allowNonFinite: true).values[1].isNaN)
    }
}
