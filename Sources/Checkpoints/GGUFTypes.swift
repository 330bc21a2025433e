/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// The value as an Int when it is an integer that fits.
    public var intValue: Int? {
        switch self {
        case .uint(let value): return value <= UInt64(Int.max) ? Int(value) : nil
        case .int(let value): return Int(exactly: value)
        default: return nil
        }
    }

    /// The value as a Double when it is a number.
    public var doubleValue: Double? {
        switch self {
        case .uint(let value): return Double(value)
        case .int(let value): return Double(value)
        case .float(let value): return value
        default: return nil
        }
    }

    public var stringValue: String? { if case .string(let value) = self { return value } else { return nil } }
    public var arrayValue: [GGUFValue]? { if case .array(let value) = self { return value } else { return nil } }
}

/// The tensor types of ggml this reader dequantises to float32, with ggml's numbers.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30

    /// Elements per block.
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q8_0: return 32
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18    // f16 scale, 16 bytes of 4-bit values
        case .q4_1: return 20    // f16 scale, f16 minimum, 16 bytes of 4-bit values
        case .q8_0: return 34    // f16 scale, 32 signed bytes
        }
    }

    /// The name ggml gives the type.
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q8_0: return "Q8_0"
        }
    }

    /// Names of ggml types this reader knows but cannot dequantise (for error messages).
    static func knownName(_ raw: UInt32) -> String? {
        let names: [UInt32: String] = [6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K",
                                       14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
                                       20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16",
                                       26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M"]
        return names[raw]
    }

    /// Dequantises `count` elements (a whole number of blocks) at `source` (any alignment) into `destination`.
    func dequantize(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        @inline(__always) func half(_ offset: Int) -> Float {
            float32(fromHalfBits: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
        }
        switch self {
        case .f32:
            for i in 0..<count {
                destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0..<count { destination[i] = half(2 * i) }
        case .bf16:
            for i in 0..<count {
                destination[i] = float32(fromBFloat16Bits: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .q8_0:
            // x = d q, q signed 8-bit.
            for block in 0..<(count / 32) {
                let base = block * 34, d = half(base), out = destination + block * 32
                for j in 0..<32 { out[j] = d * Float(source.load(fromByteOffset: base + 2 + j, as: Int8.self)) }
            }
        case .q4_0:
            // x = d (q - 8); byte j holds element j in its low nibble and element j + 16 in its high nibble.
            for block in 0..<(count / 32) {
                let base = block * 18, d = half(base), out = destination + block * 32
                for j in 0..<16 {
                    let byte = source.load(fromByteOffset: base + 2 + j, as: UInt8.self)
                    out[j] = d * Float(Int(byte & 0x0F) - 8)
                    out[j + 16] = d * Float(Int(byte >> 4) - 8)
                }
            }
        case .q4_1:
            // x = d q + m, nibbles laid out as in Q4_0.
            for block in 0..<(count / 32) {
                let base = block * 20, d = half(base), m = half(base + 2), out = destination + block * 32
                for j in 0..<16 {
                    let byte = source.load(fromByteOffset: base + 4 + j, as: UInt8.self)
                    out[j] = d * Float(byte & 0x0F) + m
                    out[j + 16] = d * Float(byte >> 4) + m
                }
            }
        }
    }
}

/// Where a tensor of a GGUF file lies and what it holds.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// Dimensions as GGUF stores them, innermost (contiguous) first: a [out, in] weight has `ne` [in, out].
    public let ne: [Int]
    public let type: GGMLType
    /// Offset from the start of the data section.
    public let offset: Int
    /// Bytes the tensor occupies.
    public let byteCount: Int

    /// Number of elements.
    public var elementCount: Int { ne.reduce(1, *) }
    /// The shape in row-major order, outermost first (`ne` reversed), as a `Tensor` has it.
    public var shape: [Int] { ne.reversed() }
}
