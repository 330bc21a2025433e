import Checkpoints
import Engine
import Foundation
import XCTest

final class SafeTensorsRoundTripTests: XCTestCase {
    var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory() }
    override func tearDown() { directory.remove() }

    func testWriteThenReadF32AndI32() throws {
        let url = directory.file("model.safetensors")
        let weight = Tensor(shape: [2, 3], values: [1, -2, 3.5, 0, 1e-30, -Float.greatestFiniteMagnitude])
        let scalar = Tensor(scalar: 7)
        let empty = Tensor(zeros: [0, 4])
        let indices = Int32Tensor(shape: [2, 3], values: [0, 1, 2, -5, Int32.max, Int32.min])
        try SafeTensors.write(["w": weight, "s": scalar, "e": empty], int32: ["idx": indices],
            metadata: ["format": "pt", "note": "quote \" and \\ and\nnewline"], to: url)

        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "quote \" and \\ and\nnewline"])
        XCTAssertEqual(Set(file.names), ["w", "s", "e", "idx"])
        XCTAssertEqual(file.info("w")?.dtype, .f32)
        XCTAssertEqual(file.info("w")?.shape, [2, 3])
        XCTAssertEqual(file.info("idx")?.dtype, .i32)
        XCTAssertEqual(try file.tensor("w").values, weight.values)
        XCTAssertEqual(try file.tensor("w").name, "w")
        XCTAssertEqual(try file.tensor("s").shape, [])
        XCTAssertEqual(try file.tensor("s").item, 7)
        XCTAssertEqual(try file.tensor("e").shape, [0, 4])
        XCTAssertEqual(try file.int32Values("idx"), indices.values)
        XCTAssertEqual(try file.int64Values("idx"), indices.values.map(Int64.init))
        XCTAssertEqual(try file.tensor("idx").values, indices.values.map(Float.init))
        let all = try file.loadAll()
        XCTAssertEqual(Set(all.keys), ["w", "s", "e", "idx"])
        XCTAssertEqual(all["w"]?.values, weight.values)
    }

    func testLayoutFollowsReferenceWriter() throws {
        let url = directory.file("layout.safetensors")
        try SafeTensors.write([("b", Tensor(shape: [3], values: [1, 2, 3])), ("a", Tensor(shape: [1], values: [4]))],
            int32: [("c", Int32Tensor(shape: [2], values: [5, 6]))], to: url)
        let bytes = [UInt8](try Data(contentsOf: url))
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(headerLength % 8, 0, "header must be padded to a multiple of 8")
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{"))
        XCTAssertFalse(header.contains("__metadata__"), "no metadata was given")
        // Same element size (4 bytes) everywhere, so the order is by name.
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.names, ["a", "b", "c"])
        XCTAssertEqual(file.info("a")?.dataOffsets, 0..<4)
        XCTAssertEqual(file.info("b")?.dataOffsets, 4..<16)
        XCTAssertEqual(file.info("c")?.dataOffsets, 16..<24)
        XCTAssertEqual(bytes.count, 8 + headerLength + 24)
    }

    /// F16, BF16, F64, I64, I16, I8, U8 and BOOL files are written by hand (the writer only emits F32/I32).
    func testReadsEveryConvertibleDtype() throws {
        let f16: [UInt16] = [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x7C00]  // 1, -2, 0.5, 65504, 2^-24, +inf
        let bf16: [UInt16] = [0x3F80, 0xC040, 0x3E20]  // 1, -3, 0.15625
        let f64: [Double] = [0.1, -1e10]
        let i64: [Int64] = [-5, 1 << 40]
        let i16: [Int16] = [-300, 300]
        let i8: [Int8] = [-128, 127]
        let u8: [UInt8] = [0, 255]
        let bools: [UInt8] = [1, 0, 1]
        var data: [UInt8] = []
        var entries: [String] = []
        func add(_ name: String, _ dtype: String, _ shape: [Int], _ bytes: [UInt8]) {
            entries.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(data.count),\(data.count + bytes.count)]}")
            data += bytes
        }
        add("f64", "F64", [2], f64.flatMap { leBytes($0.bitPattern) })
        add("i64", "I64", [2], i64.flatMap { leBytes($0) })
        add("f16", "F16", [2, 3], f16.flatMap { leBytes($0) })
        add("bf16", "BF16", [3], bf16.flatMap { leBytes($0) })
        add("i16", "I16", [2], i16.flatMap { leBytes($0) })
        add("i8", "I8", [2], i8.flatMap { leBytes($0) })
        add("u8", "U8", [1, 2], u8)
        add("bool", "BOOL", [3], bools)
        let url = try directory.write("dtypes.safetensors",
            craftSafeTensors(header: "{" + entries.joined(separator: ",") + "}", data: data))

        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.info("f16")?.dtype, .f16)
        XCTAssertEqual(try file.tensor("f16", allowNonFinite: true).shape, [2, 3])
        XCTAssertThrowsError(try file.tensor("f16")) { error in XCTAssertEqual((error as? CheckpointError)?.kind, .nonFinite) }
        XCTAssertEqual(try file.tensor("f16", allowNonFinite: true).values, [1, -2, 0.5, 65504, Float(1) / 16_777_216, .infinity])
        XCTAssertEqual(try file.tensor("bf16").values, [1, -3, 0.15625])
        XCTAssertEqual(try file.tensor("f64").values, [Float(0.1), -1e10])
        XCTAssertEqual(try file.tensor("i64").values, [-5, Float(1 << 40)])
        XCTAssertEqual(try file.int64Values("i64"), i64)
        XCTAssertEqual(try file.tensor("i16").values, [-300, 300])
        XCTAssertEqual(try file.tensor("i8").values, [-128, 127])
        XCTAssertEqual(try file.tensor("u8").values, [0, 255])
        XCTAssertEqual(try file.tensor("bool").values, [1, 0, 1])
        XCTAssertEqual(try file.int32Values("i16"), [-300, 300])
        assertCheckpointError(try file.int32Values("i64"), mentions: [url.path, "'i64'", "does not fit"])
        assertCheckpointError(try file.int32Values("f16"), kind: .unsupportedDtype,
            mentions: [url.path, "'f16'", "not an integer"])
        for name in file.names { XCTAssertFalse(file.isZeroCopy(name), name) }
    }

    func testUnalignedF32IsCopiedCorrectly() throws {
        // A one-byte U8 first puts the F32 tensor at an odd offset, so it cannot be mapped as floats.
        let header = "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
            + "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}"
        let url = try directory.write("unaligned.safetensors",
            craftSafeTensors(header: header, data: [9] + leBytes([1.5, -2.25])))
        let file = try SafeTensorsFile(url: url)
        XCTAssertFalse(file.isZeroCopy("x"))
        XCTAssertEqual(try file.tensor("x").values, [1.5, -2.25])
    }

    func testAlignedF32IsMappedWithoutCopy() throws {
        let url = directory.file("mapped.safetensors")
        try SafeTensors.write(["x": Tensor(shape: [4], values: [1, 2, 3, 4])], to: url)
        var file: SafeTensorsFile? = try SafeTensorsFile(url: url)
        XCTAssertTrue(file!.isZeroCopy("x"))
        let first = try file!.tensor("x")
        let second = try file!.tensor("x")
        XCTAssertEqual(first.data, second.data, "both views must point into the same mapping")
        // The mapping is copy-on-write: writing changes memory, never the file.
        first.data[0] = 42
        XCTAssertEqual(second[0], 42)
        XCTAssertEqual(try SafeTensorsFile(url: url).tensor("x").values, [1, 2, 3, 4])
        // The tensor keeps the mapping alive after the file object is gone.
        file = nil
        XCTAssertEqual(first.values, [42, 2, 3, 4])
    }

    func testAtomicWriteLeavesNoTemporaryFiles() throws {
        let url = directory.file("atomic.safetensors")
        try SafeTensors.write(["x": Tensor(shape: [2], values: [1, 2])], to: url)
        let old = try SafeTensorsFile(url: url)
        let oldTensor = try old.tensor("x")
        try SafeTensors.write(["x": Tensor(shape: [3], values: [7, 8, 9])], to: url)
        XCTAssertEqual(try directory.contents(), ["atomic.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(url: url).tensor("x").values, [7, 8, 9])
        // The rename replaced the directory entry; the old mapping still sees the old, complete file.
        XCTAssertEqual(oldTensor.values, [1, 2])

        // A refused write leaves neither a temporary file nor a changed destination.
        assertCheckpointError(
            try SafeTensors.write([("x", Tensor(shape: [1], values: [0])), ("x", Tensor(shape: [1], values: [1]))],
                to: url),
            kind: .invalidArgument, mentions: [url.path, "'x'", "twice"])
        assertCheckpointError(
            try SafeTensors.write([:], int32: ["bad": Int32Tensor(shape: [3], values: [1])], to: url),
            kind: .invalidArgument, mentions: [url.path, "'bad'"])
        XCTAssertEqual(try directory.contents(), ["atomic.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(url: url).tensor("x").values, [7, 8, 9])

        let nowhere = directory.file("no-such-dir/x.safetensors")
        assertCheckpointError(try SafeTensors.write(["x": Tensor(scalar: 1)], to: nowhere), kind: .io,
            mentions: [nowhere.path])
    }
}
