import Engine
import Foundation

/// The parts of an ONNX model file that weight import needs: graph initializers and nodes.
///
/// The file is memory-mapped and decoded with a bounds-checked protobuf reader: anything malformed throws a
/// `CheckpointError` naming the file. Only `ModelProto.ir_version/producer_name/opset_import/graph`,
/// `GraphProto.node/initializer` and the data-carrying fields of `TensorProto` are read; the rest is skipped.
/// Tensor values stay in the mapping until `floatTensor` copies them out.
public final class ONNXModel: @unchecked Sendable {
    /// The file's path, as given.
    public let path: String
    /// `ModelProto.ir_version`.
    public let irVersion: Int
    /// `ModelProto.producer_name` (e.g. "pytorch").
    public let producerName: String
    /// The opset version of the default ("" or "ai.onnx") domain, if declared.
    public let opsetVersion: Int?
    /// Graph initializers, in file order.
    public let initializers: [ONNXInitializer]
    /// Graph nodes, in file (topological) order.
    public let nodes: [ONNXNode]

    private let file: MappedFile
    private let initializerIndex: [String: Int]

    /// Maps and decodes the ONNX model at `path`.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path, copyOnWrite: false)
        var reader = ProtobufReader(bytes: file.bytes, range: 0..<file.size, path: path, message: "ModelProto")
        var irVersion: Int?
        var producerName = ""
        var opsetVersion: Int?
        var graph: Range<Int>?
        while let (number, wireType) = try reader.nextField() {
            switch number {
            case 1:
                try reader.require(.varint, got: wireType, field: "ir_version")
                irVersion = Int(truncatingIfNeeded: try reader.readVarint())
            case 2:
                try reader.require(.lengthDelimited, got: wireType, field: "producer_name")
                producerName = try reader.readString()
            case 7:
                try reader.require(.lengthDelimited, got: wireType, field: "graph")
                graph = try reader.readLengthDelimited()
            case 8:
                try reader.require(.lengthDelimited, got: wireType, field: "opset_import")
                var opset = reader.reader(for: try reader.readLengthDelimited(), message: "OperatorSetIdProto")
                let (domain, version) = try Self.parseOpset(&opset)
                if domain.isEmpty || domain == "ai.onnx" { opsetVersion = version }
            default:
                try reader.skip(wireType)
            }
        }
        guard let irVersion else {
            throw CheckpointError(.invalidONNX, path: path, "not an ONNX model: ModelProto has no ir_version")
        }
        guard let graph else { throw CheckpointError(.invalidONNX, path: path, "ONNX model has no graph") }
        var graphReader = reader.reader(for: graph, message: "GraphProto")
        let (nodes, initializers) = try Self.parseGraph(&graphReader)
        var index: [String: Int] = [:]
        for (i, initializer) in initializers.enumerated() {
            guard index.updateValue(i, forKey: initializer.name) == nil else {
                throw CheckpointError(.invalidONNX, path: path, tensor: initializer.name, "initializer appears twice")
            }
        }
        self.irVersion = irVersion
        self.producerName = producerName
        self.opsetVersion = opsetVersion
        self.nodes = nodes
        self.initializers = initializers
        initializerIndex = index
    }

    /// Maps and decodes the ONNX model at `url`.
    public convenience init(url: URL) throws { try self.init(path: url.path) }

    /// The initializer called `name`; throws an error naming the file and the tensor if there is none.
    public func initializer(_ name: String) throws -> ONNXInitializer {
        guard let i = initializerIndex[name] else {
            throw CheckpointError(.missingTensor, path: path, tensor: name,
                "no such initializer in the ONNX graph (it has \(initializers.count))")
        }
        return initializers[i]
    }

    /// Whether the graph has an initializer called `name`.
    public func hasInitializer(_ name: String) -> Bool { initializerIndex[name] != nil }

    /// The nodes that take `value` as an input.
    public func consumers(of value: String) -> [ONNXNode] { nodes.filter { $0.inputs.contains(value) } }

    /// The initializer called `name` as a float32 tensor (see `floatTensor(_:)`).
    public func floatTensor(named name: String) throws -> Tensor { try floatTensor(initializer(name)) }

    /// The values of `initializer` converted to a new float32 tensor of shape `dims`, named like the initializer.
    /// Throws for external data, non-numeric types, or data whose size does not match the shape.
    public func floatTensor(_ initializer: ONNXInitializer) throws -> Tensor {
        func fail(_ reason: String, kind: CheckpointError.Kind = .invalidONNX) -> CheckpointError {
            CheckpointError(kind, path: path, tensor: initializer.name, reason)
        }
        if let location = initializer.externalLocation {
            throw fail("values are stored as external data (location '\(location)'), which is not supported; "
                + "save the model with all tensors inside the .onnx file")
        }
        guard let dtype = ONNXDataType.dtype(initializer.dataType) else {
            throw fail("\(initializer.dataTypeName) cannot be converted to float32", kind: .unsupportedDtype)
        }
        let count = initializer.elementCount
        // Everything is checked against the bytes actually in the file before the result is allocated, so dims
        // that claim more elements than the file holds are refused instead of allocating them.
        if let raw = initializer.rawData {
            let (bits, overflow) = count.multipliedReportingOverflow(by: dtype.bitWidth)
            guard !overflow, bits / 8 == raw.count else {
                throw fail("dims \(initializer.dims) (\(count) elements of \(initializer.dataTypeName) = "
                    + (overflow ? "more bytes than fit in memory" : "\(bits / 8) bytes") + ") but raw_data has \(raw.count) bytes")
            }
        } else if let field = initializer.typedField {
            guard field == ONNXDataType.typedField(initializer.dataType) else {
                throw fail("\(initializer.dataTypeName) values stored in \(field)")
            }
            guard initializer.typedData.count == count else {
                throw fail("dims \(initializer.dims) need \(count) values but \(field) has \(initializer.typedData.count)")
            }
        } else if count > 0 {
            throw fail("has dims \(initializer.dims) but no data (no raw_data nor typed values)")
        }
        let result = Tensor(uninitialized: initializer.dims)
        result.name = initializer.name
        if let raw = initializer.rawData {
            if count > 0 {
                _ = convertToFloat32(dtype, from: file.bytes.baseAddress! + raw.lowerBound, count: count,
                    into: result.data)
            }
        } else if initializer.typedField != nil {
            for (i, bits) in initializer.typedData.enumerated() {
                result.data[i] = Self.float(fromTypedBits: bits, dtype: dtype)
            }
        }
        return result
    }

    /// One element of a typed `TensorProto` field, as stored by protobuf (see onnx.proto's field comments).
    private static func float(fromTypedBits bits: UInt64, dtype: SafeTensorsDType) -> Float {
        switch dtype {
        case .f32: return Float(bitPattern: UInt32(truncatingIfNeeded: bits))
        case .f64: return Float(Double(bitPattern: bits))
        case .f16: return float32(fromHalfBits: UInt16(truncatingIfNeeded: bits))
        case .bf16: return float32(fromBFloat16Bits: UInt16(truncatingIfNeeded: bits))
        case .u64, .u32: return Float(bits)
        case .bool: return bits != 0 ? 1 : 0
        default: return Float(Int64(bitPattern: bits))  // int32_data / int64_data hold sign-extended varints
        }
    }

    private static func parseOpset(_ reader: inout ProtobufReader) throws -> (domain: String, version: Int) {
        var domain = ""
        var version = 0
        while let (number, wireType) = try reader.nextField() {
            switch (number, wireType) {
            case (1, .lengthDelimited): domain = try reader.readString()
            case (2, .varint): version = Int(truncatingIfNeeded: try reader.readVarint())
            default: try reader.skip(wireType)
            }
        }
        return (domain, version)
    }

    private static func parseGraph(_ reader: inout ProtobufReader) throws -> ([ONNXNode], [ONNXInitializer]) {
        var nodes: [ONNXNode] = []
        var initializers: [ONNXInitializer] = []
        while let (number, wireType) = try reader.nextField() {
            switch number {
            case 1:
                try reader.require(.lengthDelimited, got: wireType, field: "node")
                var node = reader.reader(for: try reader.readLengthDelimited(), message: "NodeProto")
                nodes.append(try parseNode(&node))
            case 5:
                try reader.require(.lengthDelimited, got: wireType, field: "initializer")
                var tensor = reader.reader(for: try reader.readLengthDelimited(), message: "TensorProto")
                initializers.append(try parseTensor(&tensor))
            default:
                try reader.skip(wireType)
            }
        }
        return (nodes, initializers)
    }

    private static func parseNode(_ reader: inout ProtobufReader) throws -> ONNXNode {
        var name = "", opType = ""
        var inputs: [String] = [], outputs: [String] = []
        while let (number, wireType) = try reader.nextField() {
            switch number {
            case 1:
                try reader.require(.lengthDelimited, got: wireType, field: "input")
                inputs.append(try reader.readString())
            case 2:
                try reader.require(.lengthDelimited, got: wireType, field: "output")
                outputs.append(try reader.readString())
            case 3:
                try reader.require(.lengthDelimited, got: wireType, field: "name")
                name = try reader.readString()
            case 4:
                try reader.require(.lengthDelimited, got: wireType, field: "op_type")
                opType = try reader.readString()
            default:
                try reader.skip(wireType)
            }
        }
        return ONNXNode(name: name, opType: opType, inputs: inputs, outputs: outputs)
    }

    private static func parseTensor(_ reader: inout ProtobufReader) throws -> ONNXInitializer {
        let start = reader.position
        var dims: [UInt64] = []
        var dataType = 0
        var name = ""
        var rawData: Range<Int>?
        var typed: [UInt64] = []
        var typedField: String?
        var externalLocation: String?
        var isExternal = false
        func collect(_ field: String, _ read: (inout ProtobufReader) throws -> Void) throws {
            if let typedField, typedField != field {
                throw reader.corrupt("TensorProto has values in both \(typedField) and \(field)")
            }
            typedField = field
            try read(&reader)
        }
        while let (number, wireType) = try reader.nextField() {
            switch number {
            case 1: try reader.readVarints(wireType, field: "dims", into: &dims)
            case 2:
                try reader.require(.varint, got: wireType, field: "data_type")
                dataType = Int(truncatingIfNeeded: try reader.readVarint())
            case 3:
                throw reader.corrupt("segmented TensorProto (field 'segment') is not supported")
            case 4: try collect("float_data") { try $0.readFixed(wireType, size: 4, field: "float_data", into: &typed) }
            case 5: try collect("int32_data") { try $0.readVarints(wireType, field: "int32_data", into: &typed) }
            case 7: try collect("int64_data") { try $0.readVarints(wireType, field: "int64_data", into: &typed) }
            case 10: try collect("double_data") { try $0.readFixed(wireType, size: 8, field: "double_data", into: &typed) }
            case 11: try collect("uint64_data") { try $0.readVarints(wireType, field: "uint64_data", into: &typed) }
            case 8:
                try reader.require(.lengthDelimited, got: wireType, field: "name")
                name = try reader.readString()
            case 9:
                try reader.require(.lengthDelimited, got: wireType, field: "raw_data")
                rawData = try reader.readLengthDelimited()
            case 13:
                try reader.require(.lengthDelimited, got: wireType, field: "external_data")
                var entry = reader.reader(for: try reader.readLengthDelimited(), message: "StringStringEntryProto")
                var key = "", value = ""
                while let (n, w) = try entry.nextField() {
                    switch (n, w) {
                    case (1, .lengthDelimited): key = try entry.readString()
                    case (2, .lengthDelimited): value = try entry.readString()
                    default: try entry.skip(w)
                    }
                }
                isExternal = true
                if key == "location" { externalLocation = value }
            case 14:
                try reader.require(.varint, got: wireType, field: "data_location")
                if try reader.readVarint() == 1 { isExternal = true }
            default:
                try reader.skip(wireType)
            }
        }
        var shape: [Int] = []
        var count = 1
        for d in dims {
            let dim = Int64(bitPattern: d)
            var overflow = dim < 0
            if !overflow { (count, overflow) = count.multipliedReportingOverflow(by: Int(dim)) }
            guard !overflow else {
                throw reader.corrupt("tensor '\(name)' has invalid dims \(dims.map { Int64(bitPattern: $0) })", at: start)
            }
            shape.append(Int(dim))
        }
        if isExternal && externalLocation == nil { externalLocation = "unknown" }
        return ONNXInitializer(name: name, dims: shape, dataType: dataType, externalLocation: externalLocation,
            rawData: rawData, typedData: typed, typedField: typedField)
    }
}
