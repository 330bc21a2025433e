/// A canonical Huffman code of a DEFLATE block, built from per-symbol code lengths (RFC 1951 section 3.2.2).
///
/// Codes up to ``fastBits`` long are decoded with one table lookup; longer ones with the canonical
/// count/offset walk. Over-subscribed length sets are rejected; incomplete ones are accepted and fail only
/// if an unassigned code actually occurs.
struct DeflateHuffmanTable: Sendable {
    /// Bits resolved by one lookup in ``fast``.
    static let fastBits = 10
    /// Longest code length DEFLATE allows.
    static let maxBits = 15

    /// Indexed by the next `fastBits` stream bits: `symbol << 4 | length`, or 0 when the code is longer.
    let fast: [UInt16]
    /// Number of codes of each length 0...15 (index 0 unused).
    let counts: [UInt16]
    /// Symbols sorted by code length then value: the canonical order.
    let symbols: [UInt16]

    /// Builds the code for `lengths[symbol]` (0 = unused symbol).
    init(lengths: [UInt8]) throws {
        var counts = [UInt16](repeating: 0, count: Self.maxBits + 1)
        for length in lengths {
            guard Int(length) <= Self.maxBits else { throw InflateFailure.invalidCodeLengths("code length above 15") }
            counts[Int(length)] += 1
        }
        counts[0] = 0
        var left = 1
        for length in 1...Self.maxBits {
            left = (left << 1) - Int(counts[length])
            guard left >= 0 else { throw InflateFailure.invalidCodeLengths("over-subscribed Huffman code") }
        }

        var offsets = [Int](repeating: 0, count: Self.maxBits + 2)
        for length in 1...Self.maxBits { offsets[length + 1] = offsets[length] + Int(counts[length]) }
        var symbols = [UInt16](repeating: 0, count: max(offsets[Self.maxBits + 1], 1))
        var nextCode = [Int](repeating: 0, count: Self.maxBits + 1)
        var code = 0
        for length in 1...Self.maxBits {
            code = (code + Int(counts[length - 1])) << 1
            nextCode[length] = code
        }

        let fastSize = 1 << Self.fastBits
        var fast = [UInt16](repeating: 0, count: fastSize)
        for (symbol, lengthByte) in lengths.enumerated() where lengthByte != 0 {
            let length = Int(lengthByte)
            symbols[offsets[length]] = UInt16(symbol)
            offsets[length] += 1
            let assigned = nextCode[length]
            nextCode[length] += 1
            guard length <= Self.fastBits else { continue }
            // The stream holds Huffman codes most-significant bit first, so index by the reversed code.
            var reversed = 0
            for bit in 0..<length where assigned & (1 << bit) != 0 { reversed |= 1 << (length - 1 - bit) }
            let entry = UInt16(symbol << 4 | length)
            var slot = reversed
            while slot < fastSize {
                fast[slot] = entry
                slot += 1 << length
            }
        }
        self.fast = fast
        self.counts = counts
        self.symbols = symbols
    }

    /// The fixed literal/length code of block type 1.
    static let fixedLiteralLength: DeflateHuffmanTable = {
        var lengths = [UInt8](repeating: 8, count: 288)
        for symbol in 144..<256 { lengths[symbol] = 9 }
        for symbol in 256..<280 { lengths[symbol] = 7 }
        // The fixed lengths form a complete code, so construction cannot fail.
        return (try? DeflateHuffmanTable(lengths: lengths)) ?? DeflateHuffmanTable.empty
    }()

    /// The fixed distance code of block type 1 (30 symbols of 5 bits; 30 and 31 are invalid).
    static let fixedDistance: DeflateHuffmanTable = {
        (try? DeflateHuffmanTable(lengths: [UInt8](repeating: 5, count: 30))) ?? DeflateHuffmanTable.empty
    }()

    /// A code with no symbols (every lookup fails); only a fallback that is never used in practice.
    static let empty = DeflateHuffmanTable(fast: [UInt16](repeating: 0, count: 1 << fastBits),
                                           counts: [UInt16](repeating: 0, count: maxBits + 1), symbols: [0])

    private init(fast: [UInt16], counts: [UInt16], symbols: [UInt16]) {
        self.fast = fast
        self.counts = counts
        self.symbols = symbols
    }
}
