/// The element types a safetensors header may name (the reference list), with their sizes.
///
/// Every dtype here is accepted when a file is opened (so its sizes can be validated), but only the ones with
/// `convertsToFloat32` can be loaded as a `Tensor`; the others (8-bit floats, sub-byte floats, complex) throw a
/// clear error when loaded.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case f8E4M3 = "F8_E4M3", f8E5M2 = "F8_E5M2", f8E4M3FNUZ = "F8_E4M3FNUZ", f8E5M2FNUZ = "F8_E5M2FNUZ"
    case f8E8M0 = "F8_E8M0"
    case f4 = "F4", f6E2M3 = "F6_E2M3", f6E3M2 = "F6_E3M2"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case c64 = "C64"
    case f64 = "F64", i64 = "I64", u64 = "U64"

    /// Size of one element in bits (4 and 6 for the sub-byte float formats).
    public var bitWidth: Int {
        switch self {
        case .f4: return 4
        case .f6E2M3, .f6E3M2: return 6
        case .bool, .u8, .i8, .f8E4M3, .f8E5M2, .f8E4M3FNUZ, .f8E5M2FNUZ, .f8E8M0: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// Whether `SafeTensorsFile.tensor` can convert this dtype to float32.
    public var convertsToFloat32: Bool {
        switch self {
        case .bool, .u8, .i8, .i16, .u16, .f16, .bf16, .i32, .u32, .f32, .f64, .i64, .u64: return true
        default: return false
        }
    }

    /// Whether the elements are integers (or booleans), readable exactly with `int64Values`.
    public var isInteger: Bool {
        switch self {
        case .bool, .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64: return true
        default: return false
        }
    }
}

/// Converts IEEE half-precision bits to a Float (exact; handles subnormals, infinities and NaN).
@inline(__always) func float32(fromHalfBits h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0x1F {  // infinity or NaN
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    if exponent == 0 {  // zero or subnormal: mantissa * 2^-24
        let magnitude = Float(mantissa) * (1.0 / 16_777_216.0)
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// Converts bfloat16 bits to a Float (exact).
@inline(__always) func float32(fromBFloat16Bits b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// Converts `count` little-endian elements of `dtype` at `source` (any alignment) to float32 at `destination`.
/// Returns false if the dtype cannot be converted.
func convertToFloat32(
    _ dtype: SafeTensorsDType, from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) -> Bool {
    @inline(__always) func each<T>(_ type: T.Type, _ convert: (T) -> Float) {
        let stride = MemoryLayout<T>.size
        for i in 0..<count { destination[i] = convert(source.loadUnaligned(fromByteOffset: i * stride, as: T.self)) }
    }
    switch dtype {
    case .f32:
        UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        for i in 0..<count { destination[i] = Float(bitPattern: UInt32(littleEndian: destination[i].bitPattern)) }
    case .f16: each(UInt16.self) { float32(fromHalfBits: UInt16(littleEndian: $0)) }
    case .bf16: each(UInt16.self) { float32(fromBFloat16Bits: UInt16(littleEndian: $0)) }
    case .f64: each(UInt64.self) { Float(Double(bitPattern: UInt64(littleEndian: $0))) }
    case .i64: each(Int64.self) { Float(Int64(littleEndian: $0)) }
    case .u64: each(UInt64.self) { Float(UInt64(littleEndian: $0)) }
    case .i32: each(Int32.self) { Float(Int32(littleEndian: $0)) }
    case .u32: each(UInt32.self) { Float(UInt32(littleEndian: $0)) }
    case .i16: each(Int16.self) { Float(Int16(littleEndian: $0)) }
    case .u16: each(UInt16.self) { Float(UInt16(littleEndian: $0)) }
    case .i8: each(Int8.self) { Float($0) }
    case .u8: each(UInt8.self) { Float($0) }
    case .bool: each(UInt8.self) { $0 != 0 ? 1 : 0 }
    default: return false
    }
    return true
}

/// Reads element `i` of an integer dtype as Int64; nil for non-integer dtypes or a U64 value above Int64.max.
@inline(__always) func integerElement(_ dtype: SafeTensorsDType, _ source: UnsafeRawPointer, _ i: Int) -> Int64? {
    switch dtype {
    case .i64: return Int64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
    case .u64:
        let v = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
        return v <= UInt64(Int64.max) ? Int64(v) : nil
    case .i32: return Int64(Int32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
    case .u32: return Int64(UInt32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
    case .i16: return Int64(Int16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
    case .u16: return Int64(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
    case .i8: return Int64(source.load(fromByteOffset: i, as: Int8.self))
    case .u8: return Int64(source.load(fromByteOffset: i, as: UInt8.self))
    case .bool: return source.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0
    default: return nil
    }
}
