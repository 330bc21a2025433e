import Engine
import Foundation

/// One example of a language task with an exact answer.
public struct LanguageTaskExample: Sendable, Equatable {
    public var prompt: String
    public var answer: String
}

/// A procedurally generated instruction task scored by exact match of the greedy answer: train and validation
/// drawn with the seed, a test set that never depends on it.
public struct LanguageTask: Sendable {
    public let name: String
    public let summary: String
    public let train: [LanguageTaskExample]
    public let validation: [LanguageTaskExample]
    public let test: [LanguageTaskExample]

    /// Whether `output` (the model's text) gives `answer`: equal after trimming white space and one trailing
    /// period.
    public static func isCorrect(_ output: String, answer: String) -> Bool {
        var text = output.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasSuffix(".") && !answer.hasSuffix(".") { text.removeLast() }
        return text.trimmingCharacters(in: .whitespacesAndNewlines) == answer
    }

    /// The examples as JSONL instruction data (prompt and completion).
    public static func instructions(_ examples: [LanguageTaskExample]) -> [InstructionExample] {
        examples.map { .promptCompletion(prompt: $0.prompt, completion: $0.answer) }
    }
}

/// The language tasks by name: `add-lm` (the sum of two 3-digit numbers), `reverse-lm` (four words in reverse
/// order), `sort-lm` (five 2-digit numbers in ascending order). 800 training and 100 validation examples drawn with
/// the seed, 200 test examples drawn with a fixed seed of their own (and never equal to a training prompt).
public enum LanguageTasks {
    public static let names = ["add-lm", "reverse-lm", "sort-lm"]
    public static let trainCount = 800, validationCount = 100, testCount = 200

    static let words = ["apple", "river", "stone", "cloud", "tiger", "piano", "candle", "forest", "mirror", "rocket",
                        "garden", "window", "silver", "yellow", "basket", "dragon", "planet", "ladder", "orange", "pencil",
                        "island", "bridge", "castle", "feather", "guitar", "hammer", "jacket", "kettle", "lemon", "marble"]

    public static func summary(of name: String) -> String {
        switch name {
        case "add-lm": return "add-lm: \"What is A + B?\" for 3-digit A, B; answer the sum (exact match)"
        case "reverse-lm": return "reverse-lm: four words to write in reverse order (exact match)"
        case "sort-lm": return "sort-lm: five 2-digit numbers to sort ascending, comma-separated (exact match)"
        default: return "unknown language task '\(name)'"
        }
    }

    /// One example of task `name` from `generator`.
    static func example(_ name: String, _ generator: inout RandomGenerator) -> LanguageTaskExample {
        func number(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(generator.next() % UInt64(range.count)) }
        switch name {
        case "add-lm":
            let a = number(100...999), b = number(100...999)
            return LanguageTaskExample(prompt: "What is \(a) + \(b)? Answer with the number only.", answer: "\(a + b)")
        case "reverse-lm":
            let chosen = (0..<4).map { _ in words[number(0...(words.count - 1))] }
            return LanguageTaskExample(prompt: "Write these words in reverse order: \(chosen.joined(separator: " ")). Answer with the words only.",
                                       answer: chosen.reversed().joined(separator: " "))
        default:  // sort-lm
            let values = (0..<5).map { _ in number(10...99) }
            return LanguageTaskExample(prompt: "Sort these numbers from smallest to largest: \(values.map(String.init).joined(separator: ", ")). Answer with the numbers only, separated by commas.",
                                       answer: values.sorted().map(String.init).joined(separator: ", "))
        }
    }

    /// Task `name` with its train and validation split drawn with `seed`.
    ///
    /// - Throws: ``TaskError`` listing the names when `name` is unknown.
    public static func task(named name: String, seed: UInt64 = 0) throws -> LanguageTask {
        guard names.contains(name) else {
            throw TaskError("unknown language task '\(name)'; valid: \(names.joined(separator: ", "))")
        }
        var testGenerator = RandomGenerator(seed: 0x7E57_0000 &+ UInt64(names.firstIndex(of: name) ?? 0))
        let test = (0..<testCount).map { _ in example(name, &testGenerator) }
        let testPrompts = Set(test.map(\.prompt))
        var generator = RandomGenerator(seed: seed &* 0x9E37_79B9 &+ 0x1A2B &+ UInt64(names.firstIndex(of: name) ?? 0))
        var drawn: [LanguageTaskExample] = []
        var seen = Set<String>()
        while drawn.count < trainCount + validationCount {
            let candidate = example(name, &generator)
            guard !testPrompts.contains(candidate.prompt), seen.insert(candidate.prompt).inserted else { continue }
            drawn.append(candidate)
        }
        return LanguageTask(name: name, summary: summary(of: name), train: Array(drawn.prefix(trainCount)),
                            validation: Array(drawn.suffix(validationCount)), test: test)
    }
}
