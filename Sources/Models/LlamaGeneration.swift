import Engine
import Foundation

/// How `LlamaModel.generate` picks tokens and when it stops.
public struct GenerationOptions: Sendable, Equatable {
    /// At most this many new tokens per prompt.
    public var maxNewTokens = 64
    /// 0: greedy (always the most likely token); above 0, logits are divided by it before sampling.
    public var temperature: Float = 0
    /// Sample among the k most likely tokens only (0: all).
    public var topK = 0
    /// Sample among the most likely tokens whose probabilities add up to p (1: all).
    public var topP: Float = 1
    /// Above 1, tokens already in the sequence are made less likely (transformers' rule: positive logits divided,
    /// negative ones multiplied).
    public var repetitionPenalty: Float = 1
    /// A row stops when its text ends with one of these (the stop string is kept out of the result).
    public var stopStrings: [String] = []
    /// A row stops at this token (usually the tokenizer's end-of-sequence token).
    public var stopTokens: Set<Int32> = []
    public var seed: UInt64 = 0

    public init() {}

    /// Refuses settings no sampler can use, naming the option.
    public func validate() throws {
        guard maxNewTokens >= 0 else { throw LlamaError("max new tokens must be 0 or more, got \(maxNewTokens)") }
        guard temperature.isFinite && temperature >= 0 else { throw LlamaError("temperature must be 0 or more, got \(temperature)") }
        guard topK >= 0 else { throw LlamaError("top-k must be 0 (off) or more, got \(topK)") }
        guard topP.isFinite && topP > 0 && topP <= 1 else { throw LlamaError("top-p must be in (0, 1], got \(topP)") }
        guard repetitionPenalty.isFinite && repetitionPenalty > 0 else {
            throw LlamaError("the repetition penalty must be positive, got \(repetitionPenalty)")
        }
    }
}

/// What `generate` produced for one prompt.
public struct Generation: Sendable, Equatable {
    /// The new tokens (the stop token or stop string excluded).
    public var tokens: [Int32]
    /// Why the row ended: "eos", "stop string" or "length".
    public var finishReason: String
}

extension LlamaModel {
    /// Continues each prompt (token ids; rows may differ in length, they are padded on the left) with the KV cache:
    /// one forward over the prompts, then one token per row per step. `onToken(row, token)` is called for every new
    /// token as it is chosen (for streaming). `decode` turns a row's tokens into text, for stop strings.
    public func generate(_ prompts: [[Int32]], options: GenerationOptions, padToken: Int32 = 0,
                         decode: (([Int32]) -> String)? = nil,
                         onToken: (Int, Int32) -> Void = { _, _ in }) throws -> [Generation] {
        try options.validate()
        guard !prompts.isEmpty, prompts.allSatisfy({ !$0.isEmpty }) else { throw LlamaError("every prompt needs at least one token") }
        let longest = prompts.map(\.count).max()!
        let capacity = longest + options.maxNewTokens
        guard capacity <= configuration.contextLength else {
            throw LlamaError("\(longest) prompt tokens + \(options.maxNewTokens) new ones exceed the context of \(configuration.contextLength)")
        }
        let cache = try LlamaKVCache(for: self, batch: prompts.count, capacity: max(capacity, 1))
        let rows = prompts.map { [Int32](repeating: padToken, count: longest - $0.count) + $0 }
        let mask = prompts.map { [Int](repeating: 0, count: longest - $0.count) + [Int](repeating: 1, count: $0.count) }
        var logits = try forward(rows, attentionMask: mask, cache: cache)
        var results = prompts.map { _ in Generation(tokens: [], finishReason: "length") }
        var finished = [Bool](repeating: false, count: prompts.count)
        var generator = RandomGenerator(seed: options.seed)
        let vocabulary = configuration.vocabularySize
        for _ in 0..<options.maxNewTokens {
            let values = logits.values, width = logits.shape[1]
            var next = [Int32](repeating: padToken, count: prompts.count)
            for row in 0..<prompts.count where !finished[row] {
                let offset = (row * width + width - 1) * vocabulary
                var scores = Array(values[offset..<(offset + vocabulary)])
                let token = Self.choose(&scores, history: prompts[row] + results[row].tokens, options: options,
                                        generator: &generator)
                if options.stopTokens.contains(token) {
                    finished[row] = true
                    results[row].finishReason = "eos"
                    continue
                }
                results[row].tokens.append(token)
                onToken(row, token)
                next[row] = token
                if let decode, !options.stopStrings.isEmpty {
                    let text = decode(results[row].tokens)
                    if options.stopStrings.contains(where: { text.hasSuffix($0) }) {
                        finished[row] = true
                        results[row].finishReason = "stop string"
                    }
                }
            }
            if finished.allSatisfy({ $0 }) { break }
            logits = try forward(next.map { [$0] }, attentionMask: finished.map { [$0 ? 0 : 1] }, cache: cache)
        }
        if let decode {
            // Drop a stop string's tokens from the end of the row.
            for row in results.indices where results[row].finishReason == "stop string" {
                while !results[row].tokens.isEmpty,
                      options.stopStrings.contains(where: { decode(results[row].tokens).hasSuffix($0) }) {
                    results[row].tokens.removeLast()
                }
            }
        }
        return results
    }

    /// The next token from `scores` (one row's logits): greedy at temperature 0, else sampled after the repetition
    /// penalty, temperature, top-k and top-p.
    static func choose(_ scores: inout [Float], history: [Int32], options: GenerationOptions,
                       generator: inout RandomGenerator) -> Int32 {
        if options.repetitionPenalty != 1 {
            for token in Set(history) where Int(token) < scores.count {
                let value = scores[Int(token)]
                scores[Int(token)] = value > 0 ? value / options.repetitionPenalty : value * options.repetitionPenalty
            }
        }
        if options.temperature == 0 {
            var best = 0
            for i in 1..<scores.count where scores[i] > scores[best] { best = i }
            return Int32(best)
        }
        var order = Array(0..<scores.count).sorted { scores[$0] > scores[$1] }
        if options.topK > 0 { order = Array(order.prefix(options.topK)) }
        let maximum = scores[order[0]]
        var probabilities = order.map { Double(Foundation.exp((scores[$0] - maximum) / options.temperature)) }
        let total = probabilities.reduce(0, +)
        probabilities = probabilities.map { $0 / total }
        if options.topP < 1 {
            var running = 0.0, keep = 0
            while keep < probabilities.count { running += probabilities[keep]; keep += 1; if running >= Double(options.topP) { break } }
            order = Array(order.prefix(keep))
            probabilities = Array(probabilities.prefix(keep))
            let kept = probabilities.reduce(0, +)
            probabilities = probabilities.map { $0 / kept }
        }
        var draw = Double(generator.nextUniform()), index = 0
        while index < probabilities.count - 1 && draw >= probabilities[index] { draw -= probabilities[index]; index += 1 }
        return Int32(order[index])
    }
}
