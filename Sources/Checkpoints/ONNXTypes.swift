/// A node of an ONNX graph: only what weight import needs (attributes are not read).
public struct ONNXNode: Sendable, Equatable {
    /// The node's name, e.g. `/backbone/encoder/layer.0/attention/attention/key/MatMul` (may be empty).
    public let name: String
    /// The operator, e.g. `MatMul`.
    public let opType: String
    /// Names of the values it consumes (graph inputs, initializers or other nodes' outputs).
    public let inputs: [String]
    /// Names of the values it produces.
    public let outputs: [String]

    /// A node with the given fields.
    public init(name: String, opType: String, inputs: [String], outputs: [String]) {
        self.name = name
        self.opType = opType
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// An ONNX `TensorProto` initializer: its name, type and shape, and where its values are in the file.
public struct ONNXInitializer: Sendable {
    /// The initializer's name (anonymous weights look like `onnx::MatMul_1966`).
    public let name: String
    /// Dimensions, outermost first.
    public let dims: [Int]
    /// The ONNX `TensorProto.DataType` code (1 = FLOAT, 7 = INT64, 10 = FLOAT16, ...).
    public let dataType: Int
    /// The `location` of external data, when the values are stored in another file (not supported).
    public let externalLocation: String?

    /// Number of elements (product of `dims`).
    public var elementCount: Int { dims.reduce(1, *) }
    /// A readable name for `dataType`.
    public var dataTypeName: String { ONNXDataType.name(dataType) }

    /// `raw_data` as a byte range of the model file, when present.
    let rawData: Range<Int>?
    /// The typed repeated field that held the values, when `raw_data` is absent (raw bit patterns).
    let typedData: [UInt64]
    /// Which typed field `typedData` came from ("float_data", "int32_data", ...), if any.
    let typedField: String?
}

/// ONNX `TensorProto.DataType` codes and how they map to safetensors dtypes.
enum ONNXDataType {
    static let float = 1

    static func name(_ code: Int) -> String {
        let names = [1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
            9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128",
            16: "BFLOAT16"]
        return names[code] ?? "data type \(code)"
    }

    /// The equivalent element type, for types that can be converted to float32.
    static func dtype(_ code: Int) -> SafeTensorsDType? {
        let map: [Int: SafeTensorsDType] = [1: .f32, 2: .u8, 3: .i8, 4: .u16, 5: .i16, 6: .i32, 7: .i64, 9: .bool,
            10: .f16, 11: .f64, 12: .u32, 13: .u64, 16: .bf16]
        return map[code]
    }

    /// The typed `TensorProto` field that holds values of this type when `raw_data` is not used.
    static func typedField(_ code: Int) -> String? {
        switch code {
        case 1: return "float_data"
        case 2, 3, 4, 5, 6, 9, 10, 16: return "int32_data"
        case 7: return "int64_data"
        case 11: return "double_data"
        case 12, 13: return "uint64_data"
        default: return nil
        }
    }
}
