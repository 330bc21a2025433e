#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import VectorKernels

/// A frozen weight matrix [rows, columns] kept in a block-quantised format (GGUF's Q4_0, Q4_1, Q8_0: 32 values
/// per block with a half-precision scale, and for Q4_1 a minimum), so that a model holds its weights in 4.5 to 8.5
/// bits per value instead of 32. `quantizedLinear` multiplies with it directly; `dequantized()` gives float32.
public final class QuantizedMatrix: @unchecked Sendable {
    /// The block formats the kernels read (the layout is in VectorKernels.h).
    public enum Format: Int32, Sendable, CaseIterable, CustomStringConvertible {
        case q4_0 = 0, q4_1 = 1, q8_0 = 2

        /// Bytes of one block of 32 values.
        public var blockBytes: Int { Int(peft_quant_block_bytes(rawValue)) }

        public var description: String {
            switch self {
            case .q4_0: return "Q4_0"
            case .q4_1: return "Q4_1"
            case .q8_0: return "Q8_0"
            }
        }
    }

    public let format: Format
    public let rows: Int
    public let columns: Int
    /// Bytes of one row (columns / 32 blocks).
    public let rowBytes: Int
    private let storage: UnsafeMutableRawPointer

    /// Bytes the matrix holds.
    public var byteCount: Int { rows * rowBytes }

    /// A copy of `bytes`, which must hold exactly rows x columns values in `format` (columns a multiple of 32).
    public init(format: Format, rows: Int, columns: Int, bytes: UnsafeRawBufferPointer) throws {
        guard rows > 0, columns > 0, columns % 32 == 0 else {
            throw QuantizedMatrixError("a \(format) matrix needs a positive row count and a column count that is a multiple of 32, got [\(rows), \(columns)]")
        }
        let (rowBytes, overflowRow) = (columns / 32).multipliedReportingOverflow(by: format.blockBytes)
        let (total, overflowTotal) = rows.multipliedReportingOverflow(by: rowBytes)
        guard !overflowRow, !overflowTotal else {
            throw QuantizedMatrixError("a \(format) matrix [\(rows), \(columns)] is too large")
        }
        guard bytes.count == total, let source = bytes.baseAddress else {
            throw QuantizedMatrixError("a \(format) matrix [\(rows), \(columns)] takes \(total) bytes, got \(bytes.count)")
        }
        self.format = format
        self.rows = rows
        self.columns = columns
        self.rowBytes = rowBytes
        storage = BufferPool.systemAllocate(bytes: max(total, 64))
        storage.copyMemory(from: source, byteCount: total)
    }

    deinit { free(storage) }

    /// The raw blocks, row by row.
    public var bytes: UnsafeRawPointer { UnsafeRawPointer(storage) }

    /// The index of the first block whose scale (or minimum) is NaN or infinite, or nil.
    public func firstNonFiniteBlock() -> Int? {
        let blockBytes = format.blockBytes, halves = format == .q4_1 ? 2 : 1
        let count = rows * (columns / 32)
        for block in 0..<count {
            let header = storage + block * blockBytes
            for h in 0..<halves {
                let bits = UInt16(header.load(fromByteOffset: 2 * h, as: UInt8.self))
                    | UInt16(header.load(fromByteOffset: 2 * h + 1, as: UInt8.self)) << 8
                if bits & 0x7C00 == 0x7C00 { return block }
            }
        }
        return nil
    }

    /// Reorders the rows in place: row `i` becomes the former row `order[i]` (a permutation of 0..<rows).
    public func permuteRows(_ order: [Int]) {
        precondition(order.count == rows && Set(order).count == rows && order.allSatisfy { (0..<rows).contains($0) },
                     "permuteRows: not a permutation of the \(rows) rows")
        let copy = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        defer { copy.deallocate() }
        copy.copyMemory(from: storage, byteCount: byteCount)
        for (i, from) in order.enumerated() {
            (storage + i * rowBytes).copyMemory(from: copy + from * rowBytes, byteCount: rowBytes)
        }
    }

    /// Writes rows [r0, r1) as float32 into `destination` (row stride `stride`).
    public func dequantizeRows(_ r0: Int, _ r1: Int, into destination: UnsafeMutablePointer<Float>, stride: Int) {
        precondition(0 <= r0 && r0 <= r1 && r1 <= rows && stride >= columns, "dequantizeRows: rows \(r0)..<\(r1) of \(rows)")
        let base = storage.assumingMemoryBound(to: UInt8.self)
        let block = max(1, 16_384 / columns)
        let kernels = ElementwiseKernels.active
        Parallel.forEachChunk((r1 - r0 + block - 1) / block, grain: 1) { chunks in
            let start = r0 + chunks.lowerBound * block, end = min(r1, r0 + chunks.upperBound * block)
            let target = destination + (start - r0) * stride
            switch kernels {
            case .avx512: peft_quant_dequantize_rows_avx512(format.rawValue, base, columns, start, end, target, stride)
            case .avx2: peft_quant_dequantize_rows_avx2(format.rawValue, base, columns, start, end, target, stride)
            case .portable: peft_quant_dequantize_rows(format.rawValue, base, columns, start, end, target, stride)
            }
        }
    }

    /// The whole matrix as a float32 tensor [rows, columns].
    public func dequantized() -> Tensor {
        let out = Tensor(uninitialized: [rows, columns])
        dequantizeRows(0, rows, into: out.data, stride: columns)
        return out
    }
}

/// A quantised matrix that cannot be made from the given bytes.
public struct QuantizedMatrixError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
