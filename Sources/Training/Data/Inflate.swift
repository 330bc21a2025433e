/// Why a DEFLATE stream could not be decoded.
enum InflateFailure: Error, Equatable, CustomStringConvertible {
    /// The input ended before the final block did.
    case truncated
    /// A block header announced the reserved block type 3.
    case invalidBlockType
    /// A stored block's length and its one's complement disagree.
    case storedLengthMismatch
    /// The code lengths of a dynamic block do not describe a usable Huffman code.
    case invalidCodeLengths(String)
    /// A bit pattern or symbol that the block's codes do not allow.
    case invalidCode
    /// A back-reference points before the start of the output.
    case distanceTooFar(distance: Int, available: Int)
    /// The output would exceed the caller's size limit.
    case outputLimitExceeded(limit: Int)

    /// A short explanation of the problem.
    var description: String {
        switch self {
        case .truncated: return "compressed data is truncated"
        case .invalidBlockType: return "invalid DEFLATE block type 3"
        case .storedLengthMismatch: return "stored block length does not match its complement"
        case .invalidCodeLengths(let why): return "invalid Huffman code lengths (\(why))"
        case .invalidCode: return "invalid Huffman code in compressed data"
        case .distanceTooFar(let distance, let available):
            return "back-reference distance \(distance) exceeds the \(available) bytes produced so far"
        case .outputLimitExceeded(let limit): return "decompressed data exceeds the limit of \(limit) bytes"
        }
    }
}

/// A decoder for raw DEFLATE streams (RFC 1951): stored, fixed-Huffman and dynamic-Huffman blocks.
///
/// Every read is bounds-checked explicitly, so corrupt input throws ``InflateFailure`` instead of trapping on the
/// standard library's own checks.
struct Inflater {
    private static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                            67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtraBits: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                                 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                              513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtraBits: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
                                                   9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    /// Order in which a dynamic block lists the code-length code lengths.
    private static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    private let input: UnsafeBufferPointer<UInt8>
    private var position: Int
    private var bitBuffer: UInt64 = 0
    private var bitCount = 0
    private var output: InflateOutput

    /// Decodes the DEFLATE stream that starts at `input[start]`.
    ///
    /// - Parameters:
    ///   - sizeHint: expected output size, used only to size the first allocation.
    ///   - limit: maximum number of output bytes; more throws ``InflateFailure/outputLimitExceeded(limit:)``.
    /// - Returns: the decoded bytes and the index of the first input byte after the stream.
    static func inflate(_ input: UnsafeBufferPointer<UInt8>, from start: Int, sizeHint: Int,
                        limit: Int) throws -> (output: [UInt8], end: Int) {
        var inflater = Inflater(input: input, position: start, output: InflateOutput(capacity: sizeHint, limit: limit))
        defer { inflater.output.release() }
        try inflater.decodeBlocks()
        // Give back whole bytes that were read ahead into the bit buffer.
        inflater.bitCount -= inflater.bitCount % 8
        return (inflater.output.toArray(), inflater.position - inflater.bitCount / 8)
    }

    private init(input: UnsafeBufferPointer<UInt8>, position: Int, output: InflateOutput) {
        self.input = input
        self.position = position
        self.output = output
    }

    private mutating func decodeBlocks() throws {
        var isFinal = false
        while !isFinal {
            isFinal = try bits(1) == 1
            switch try bits(2) {
            case 0: try copyStoredBlock()
            case 1: try decodeHuffmanBlock(literals: .fixedLiteralLength, distances: .fixedDistance)
            case 2:
                let (literals, distances) = try readDynamicTables()
                try decodeHuffmanBlock(literals: literals, distances: distances)
            default: throw InflateFailure.invalidBlockType
            }
        }
    }

    // MARK: Bit input

    @inline(__always)
    private mutating func refill() {
        while bitCount <= 56 && position < input.count {
            bitBuffer |= UInt64(input[position]) << UInt64(bitCount)
            position += 1
            bitCount += 8
        }
    }

    /// The next `count` (at most 16) bits, least significant first.
    @inline(__always)
    private mutating func bits(_ count: Int) throws -> Int {
        if bitCount < count { refill() }
        guard bitCount >= count else { throw InflateFailure.truncated }
        let value = Int(bitBuffer & ((1 << UInt64(count)) - 1))
        bitBuffer >>= UInt64(count)
        bitCount -= count
        return value
    }

    /// The next symbol of `table`.
    @inline(__always)
    private mutating func decodeSymbol(_ table: DeflateHuffmanTable) throws -> Int {
        if bitCount < DeflateHuffmanTable.maxBits { refill() }
        let entry = table.fast[Int(bitBuffer & ((1 << UInt64(DeflateHuffmanTable.fastBits)) - 1))]
        if entry != 0 {
            let length = Int(entry & 15)
            guard length <= bitCount else { throw InflateFailure.truncated }
            bitBuffer >>= UInt64(length)
            bitCount -= length
            return Int(entry >> 4)
        }
        // Longer code: walk the canonical code one bit at a time.
        var code = 0
        var first = 0
        var index = 0
        for length in 1...DeflateHuffmanTable.maxBits {
            guard bitCount > 0 else { throw InflateFailure.truncated }
            code |= Int(bitBuffer & 1)
            bitBuffer >>= 1
            bitCount -= 1
            let count = Int(table.counts[length])
            if code - first < count { return Int(table.symbols[index + code - first]) }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw InflateFailure.invalidCode
    }

    // MARK: Blocks

    private mutating func copyStoredBlock() throws {
        bitBuffer >>= UInt64(bitCount % 8)
        bitCount -= bitCount % 8
        let length = try bits(16)
        let complement = try bits(16)
        guard length == (~complement & 0xFFFF) else { throw InflateFailure.storedLengthMismatch }
        try output.reserve(length)
        var remaining = length
        while remaining > 0 && bitCount >= 8 {
            output.appendUnchecked(UInt8(try bits(8)))
            remaining -= 1
        }
        guard remaining <= input.count - position else { throw InflateFailure.truncated }
        output.appendUnchecked(UnsafeBufferPointer(rebasing: input[position..<(position + remaining)]))
        position += remaining
    }

    private mutating func readDynamicTables() throws -> (DeflateHuffmanTable, DeflateHuffmanTable) {
        let literalCount = try bits(5) + 257
        let distanceCount = try bits(5) + 1
        let codeLengthCount = try bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else {
            throw InflateFailure.invalidCodeLengths("too many literal/length or distance codes")
        }
        var codeLengthLengths = [UInt8](repeating: 0, count: 19)
        for index in 0..<codeLengthCount { codeLengthLengths[Self.codeLengthOrder[index]] = UInt8(try bits(3)) }
        let codeLengthTable = try DeflateHuffmanTable(lengths: codeLengthLengths)

        let total = literalCount + distanceCount
        var lengths = [UInt8]()
        lengths.reserveCapacity(total)
        while lengths.count < total {
            let symbol = try decodeSymbol(codeLengthTable)
            var repeated: UInt8 = 0
            var times: Int
            switch symbol {
            case 0...15:
                lengths.append(UInt8(symbol))
                continue
            case 16:
                guard let previous = lengths.last else {
                    throw InflateFailure.invalidCodeLengths("repeat code with no previous length")
                }
                repeated = previous
                times = 3 + (try bits(2))
            case 17: times = 3 + (try bits(3))
            case 18: times = 11 + (try bits(7))
            default: throw InflateFailure.invalidCode
            }
            guard lengths.count + times <= total else {
                throw InflateFailure.invalidCodeLengths("repeat runs past the end of the code lengths")
            }
            lengths.append(contentsOf: repeatElement(repeated, count: times))
        }
        guard lengths[256] != 0 else { throw InflateFailure.invalidCodeLengths("no end-of-block code") }
        let literals = try DeflateHuffmanTable(lengths: Array(lengths[0..<literalCount]))
        let distances = try DeflateHuffmanTable(lengths: Array(lengths[literalCount..<total]))
        return (literals, distances)
    }

    private mutating func decodeHuffmanBlock(literals: DeflateHuffmanTable, distances: DeflateHuffmanTable) throws {
        while true {
            let symbol = try decodeSymbol(literals)
            if symbol < 256 {
                try output.reserve(1)
                output.appendUnchecked(UInt8(symbol))
                continue
            }
            if symbol == 256 { return }
            let lengthIndex = symbol - 257
            guard lengthIndex < Self.lengthBase.count else { throw InflateFailure.invalidCode }
            let length = Self.lengthBase[lengthIndex] + (try bits(Self.lengthExtraBits[lengthIndex]))
            let distanceSymbol = try decodeSymbol(distances)
            guard distanceSymbol < Self.distanceBase.count else { throw InflateFailure.invalidCode }
            let distance = Self.distanceBase[distanceSymbol] + (try bits(Self.distanceExtraBits[distanceSymbol]))
            guard distance <= output.count else {
                throw InflateFailure.distanceTooFar(distance: distance, available: output.count)
            }
            try output.reserve(length)
            output.copyMatchUnchecked(distance: distance, length: length)
        }
    }
}

/// The growing output of ``Inflater``: manually managed so back-references copy without per-byte checks.
private struct InflateOutput {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private let limit: Int
    /// Bytes written so far.
    private(set) var count = 0

    init(capacity: Int, limit: Int) {
        self.limit = max(limit, 0)
        self.capacity = max(min(capacity, self.limit), 1024)
        self.base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    /// Makes room for `extra` more bytes, or throws when that would pass the limit.
    @inline(__always)
    mutating func reserve(_ extra: Int) throws {
        if count + extra <= capacity { return }
        guard count + extra <= limit else { throw InflateFailure.outputLimitExceeded(limit: limit) }
        let newCapacity = min(max(capacity * 2, count + extra), limit)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// Appends one byte; ``reserve(_:)`` must have made room.
    @inline(__always)
    mutating func appendUnchecked(_ byte: UInt8) {
        base[count] = byte
        count += 1
    }

    /// Appends bytes; ``reserve(_:)`` must have made room.
    mutating func appendUnchecked(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    /// Copies `length` bytes from `distance` back (the regions may overlap); room and distance are checked by the caller.
    @inline(__always)
    mutating func copyMatchUnchecked(distance: Int, length: Int) {
        let destination = base + count
        let source = destination - distance
        if distance >= length {
            destination.update(from: source, count: length)
        } else {
            for index in 0..<length { destination[index] = source[index] }
        }
        count += length
    }

    func toArray() -> [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    func release() { base.deallocate() }
}
