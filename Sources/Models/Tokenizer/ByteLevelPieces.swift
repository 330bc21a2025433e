/// The byte-level pre-tokenizer of GPT-2-style BPE tokenizers (Hugging Face `ByteLevel` with `use_regex`, llama.cpp's
/// "gpt2"/"smollm" pre-tokenizers): text splits into the pieces the pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` matches, tried in that order at
/// each position; each piece is then written as one printable character per UTF-8 byte (`ByteLevelAlphabet`).
enum ByteLevelPieces {
    enum Kind { case letter, number, space, other }

    static func kind(_ scalar: Unicode.Scalar) -> Kind {
        let properties = scalar.properties
        if properties.isWhitespace { return .space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// The pieces of `text`, in order; they concatenate back to `text`.
    static func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let kinds = scalars.map(kind)
        var pieces: [String] = []
        var start = 0
        func emit(_ end: Int) {
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: scalars[start..<end])
            pieces.append(String(piece))
            start = end
        }
        func run(from index: Int, of wanted: Kind) -> Int {
            var end = index
            while end < scalars.count && kinds[end] == wanted { end += 1 }
            return end
        }
        while start < scalars.count {
            let scalar = scalars[start]
            // Contractions: 's 't 're 've 'm 'll 'd (case-sensitive).
            if scalar == "'" && start + 1 < scalars.count {
                let next = scalars[start + 1]
                if ["s", "t", "m", "d"].contains(next) { emit(start + 2); continue }
                if start + 2 < scalars.count {
                    let pair = String(String.UnicodeScalarView([next, scalars[start + 2]]))
                    if ["re", "ve", "ll"].contains(pair) { emit(start + 3); continue }
                }
            }
            // An optional single space, then a run of letters, of numbers, or of other characters.
            let body = scalar == " " && start + 1 < scalars.count && kinds[start + 1] != .space ? start + 1 : start
            let bodyKind = kinds[body]
            if bodyKind != .space {
                emit(run(from: body, of: bodyKind))
                continue
            }
            // Whitespace: the run, less its last character when a non-space follows (\s+(?!\S)), else all of it.
            let end = run(from: start, of: .space)
            if end < scalars.count && end - start > 1 { emit(end - 1) } else { emit(end) }
        }
        return pieces
    }
}

/// GPT-2's reversible map from bytes to printable characters: the printable Latin-1 bytes stand for themselves, the
/// other 68 become U+0100 onwards, in byte order.
enum ByteLevelAlphabet {
    static let characters: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable { table[byte] = Unicode.Scalar(UInt32(byte))! } else { table[byte] = Unicode.Scalar(next)!; next += 1 }
        }
        return table
    }()

    static let bytes: [Unicode.Scalar: UInt8] = {
        var inverse: [Unicode.Scalar: UInt8] = [:]
        for (byte, character) in characters.enumerated() { inverse[character] = UInt8(byte) }
        return inverse
    }()

    /// `text`'s UTF-8 bytes, one character each.
    static func encode(_ text: String) -> [String] { text.utf8.map { String(Character(characters[Int($0)])) } }

    /// The bytes that `text` (characters of this alphabet) stands for; characters outside it give their own UTF-8.
    static func decode(_ text: String, into bytes: inout [UInt8]) {
        for scalar in text.unicodeScalars {
            if let byte = Self.bytes[scalar] { bytes.append(byte) } else { bytes.append(contentsOf: Array(String(scalar).utf8)) }
        }
    }
}
