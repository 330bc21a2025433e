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
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, q4_K = 12, q6_K = 14, bf16 = 30

    /// Elements per block.
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q8_0: return 32
        case .q4_K, .q6_K: return 256
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
        case .q4_K: return 144   // f16 d, f16 dmin, 12 bytes of 6-bit sub-block scales and mins, 128 bytes of 4-bit values
        case .q6_K: return 210   // 128 bytes of low 4 bits, 64 of high 2 bits, 16 signed sub-block scales, f16 d
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
        case .q4_K: return "Q4_K"
        case .q6_K: return "Q6_K"
        }
    }

    /// Names of ggml types this reader knows but cannot dequantise (for error messages).
    static func knownName(_ raw: UInt32) -> String? {
        let names: [UInt32: String] = [6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 13: "Q5_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
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
        case .q4_K:
            // 8 sub-blocks of 32 with 6-bit scale s and minimum m each: x = (d s) q - (dmin m); the 64 values of a
            // pair of sub-blocks share 32 bytes (low nibbles first, then high nibbles).
            for block in 0..<(count / 256) {
                let base = block * 144, d = half(base), dmin = half(base + 2), out = destination + block * 256
                let scales = source + base + 4, values = source + base + 16
                @inline(__always) func scaleAndMin(_ j: Int) -> (Float, Float) {
                    let b = { (i: Int) in scales.load(fromByteOffset: i, as: UInt8.self) }
                    if j < 4 { return (Float(b(j) & 63), Float(b(j + 4) & 63)) }
                    return (Float((b(j + 4) & 0x0F) | ((b(j - 4) >> 6) << 4)), Float((b(j + 4) >> 4) | ((b(j) >> 6) << 4)))
                }
                for pair in 0..<4 {
                    let (s1, m1) = scaleAndMin(2 * pair), (s2, m2) = scaleAndMin(2 * pair + 1)
                    let d1 = d * s1, dm1 = dmin * m1, d2 = d * s2, dm2 = dmin * m2
                    for l in 0..<32 {
                        let byte = values.load(fromByteOffset: 32 * pair + l, as: UInt8.self)
                        out[64 * pair + l] = d1 * Float(byte & 0x0F) - dm1
                        out[64 * pair + 32 + l] = d2 * Float(byte >> 4) - dm2
                    }
                }
            }
        case .q6_K:
            // 16 sub-blocks of 16 with a signed 8-bit scale each: x = (d s) (q - 32), q 6 bits from a low nibble
            // and two high bits, laid out in two halves of 128 values.
            for block in 0..<(count / 256) {
                let base = block * 210, d = half(base + 208), out = destination + block * 256
                for half in 0..<2 {
                    let low = source + base + 64 * half, high = source + base + 128 + 32 * half
                    let scales = source + base + 192 + 8 * half
                    let o = out + 128 * half
                    @inline(__always) func scale(_ i: Int) -> Float { d * Float(scales.load(fromByteOffset: i, as: Int8.self)) }
                    for l in 0..<32 {
                        let group = l / 16
                        let a = low.load(fromByteOffset: l, as: UInt8.self), b = low.load(fromByteOffset: l + 32, as: UInt8.self)
                        let h = high.load(fromByteOffset: l, as: UInt8.self)
                        o[l] = scale(group) * Float(Int((a & 0x0F) | ((h & 3) << 4)) - 32)
                        o[l + 32] = scale(group + 2) * Float(Int((b & 0x0F) | (((h >> 2) & 3) << 4)) - 32)
                        o[l + 64] = scale(group + 4) * Float(Int((a >> 4) | (((h >> 4) & 3) << 4)) - 32)
                        o[l + 96] = scale(group + 6) * Float(Int((b >> 4) | (((h >> 6) & 3) << 4)) - 32)
                    }
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
