import Checkpoints
import Engine
import Foundation
import XCTest

/// Inputs that once crashed a reader or made it allocate what a header claimed (see RELIABILITY.md); each must now
/// throw a clear error before anything large is allocated.
final class FuzzRegressionTests: XCTestCase {
    var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory() }
    override func tearDown() { directory.remove() }

    /// A TensorProto with the given dims, FLOAT type and name "w", plus `extra` fields.
    private func tensor(dims: [Int], _ extra: (inout ProtoWriter) -> Void) -> ProtoWriter {
        var t = ProtoWriter()
        for d in dims { t.int(1, d) }
        t.int(2, 1)
        t.string(8, "w")
        extra(&t)
        return t
    }

    private func model(_ t: ProtoWriter) throws -> ONNXModel {
        try ONNXModel(url: directory.write("model.onnx", onnxModel(nodes: [], initializers: [t])))
    }

    /// Finding 1: dims claiming 2^60 elements with 4 bytes of raw_data allocated the whole tensor before comparing
    /// its size with raw_data (an out-of-memory crash on a 38-byte file).
    func testDimsClaimingHugeTensorWithSmallRawDataAreRefusedBeforeAllocating() throws {
        let onnx = try model(tensor(dims: [1 << 40, 1 << 20]) { $0.data(9, leBytes([Float(1)])) })
        assertCheckpointError(try onnx.floatTensor(named: "w"), kind: .invalidONNX,
                              mentions: ["model.onnx", "'w'", "raw_data has 4 bytes"])
    }

    /// Finding 1 (second form): an element count whose byte size overflows Int trapped in `count * bitWidth`.
    func testByteSizeOverflowIsRefused() throws {
        let onnx = try model(tensor(dims: [1 << 31, 1 << 31]) { $0.data(9, leBytes([Float(1)])) })
        assertCheckpointError(try onnx.floatTensor(named: "w"), kind: .invalidONNX,
                              mentions: ["'w'", "more bytes than fit in memory"])
    }

    /// Finding 1 (typed and missing data): the same huge dims with one float_data value, or no data at all.
    func testHugeDimsWithTypedOrNoDataAreRefusedBeforeAllocating() throws {
        let typed = try model(tensor(dims: [1 << 40, 1 << 20]) { $0.data(4, leBytes([Float(1)])) })
        assertCheckpointError(try typed.floatTensor(named: "w"), mentions: ["need 1152921504606846976 values", "has 1"])
        let empty = try model(tensor(dims: [1 << 40, 1 << 20]) { _ in })
        assertCheckpointError(try empty.floatTensor(named: "w"), mentions: ["no data"])
    }

    /// The safetensors counterpart, already refused before this work: a header claiming 2^60 elements.
    func testSafeTensorsHeaderClaimingHugeTensorIsRefused() throws {
        let url = try directory.write("huge.safetensors", craftSafeTensors(
            header: #"{"x":{"dtype":"F32","shape":[1152921504606846976,16],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        assertCheckpointError(try SafeTensorsFile(url: url), mentions: ["huge.safetensors", "'x'", "too many elements"])
        let length = try directory.write("length.safetensors", craftSafeTensors(header: "{}", declaredLength: 1 << 60))
        assertCheckpointError(try SafeTensorsFile(url: length), mentions: ["exceeds the limit"])
    }
}
