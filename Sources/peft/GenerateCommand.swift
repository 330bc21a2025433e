import ArgumentParser
import Dispatch
import Foundation
import Methods
import Models

/// How a language model's frozen weights are held in memory.
enum WeightStorage: String, ExpressibleByArgument, CaseIterable {
    case quantized, float32
}

/// Sampling options shared by `generate` and `chat`.
struct SamplingFlags: ParsableArguments {
    @Option(help: "Language model (see `peft models`).") var model = "smollm2-135m"
    @Option(name: .customLong("max-new-tokens"), parsing: .unconditional, help: "At most this many new tokens.") var maxNewTokens = 128
    @Option(parsing: .unconditional, help: "0: greedy; above 0, sample with this temperature.") var temperature: Float = 0
    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Sample among the k most likely tokens (0: all).") var topK = 0
    @Option(name: .customLong("top-p"), parsing: .unconditional, help: "Sample among the most likely tokens up to this total probability.") var topP: Float = 1
    @Option(name: .customLong("repetition-penalty"), parsing: .unconditional, help: "Above 1, make tokens already present less likely.") var repetitionPenalty: Float = 1
    @Option(help: "Stop when the text ends with this string (repeatable).") var stop: [String] = []
    @Option(parsing: .unconditional, help: "Seed for sampling.") var seed: UInt64 = 0
    @Option(help: "An adapter directory saved by `peft train-lm` (the peft layout) to apply to the model.") var adapter: String?
    @Option(help: "quantized: keep the GGUF's quantised projections in memory as they are (about 7x smaller); float32: expand every weight at load.")
    var weights: WeightStorage = .quantized

    func options(eos: Int32?) throws -> GenerationOptions {
        var options = GenerationOptions()
        options.maxNewTokens = maxNewTokens
        options.temperature = temperature
        options.topK = topK
        options.topP = topP
        options.repetitionPenalty = repetitionPenalty
        options.stopStrings = stop
        options.stopTokens = eos.map { [$0] } ?? []
        options.seed = seed
        do { try options.validate() } catch { throw ValidationError("\(error)") }
        return options
    }

    func load() throws -> (LlamaModel, BytePairTokenizer) {
        try checkLanguageModelName(model)
        let started = DispatchTime.now().uptimeNanoseconds
        let loaded = try PretrainedModels.languageModel(named: model, quantizedWeights: weights == .quantized)
        if let adapter { try applyAdapter(adapter, to: loaded.model) }
        printError(String(format: "loaded %@%@ in %.1f s", model, adapter.map { " with the adapter \($0)" } ?? "",
                          Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
        return loaded
    }
}

/// Streams a row's text as tokens arrive: prints what is new since the last call, holding back an incomplete
/// UTF-8 character.
final class TextStream {
    let tokenizer: BytePairTokenizer
    var tokens: [Int32] = []
    var printed = 0
    init(tokenizer: BytePairTokenizer) { self.tokenizer = tokenizer }

    func add(_ token: Int32) {
        tokens.append(token)
        let text = tokenizer.decode(tokens, skipSpecialTokens: true)
        guard !text.hasSuffix("\u{FFFD}"), text.count > printed else { return }
        FileHandle.standardOutput.write(Data(String(text.dropFirst(printed)).utf8))
        printed = text.count
    }
}

/// Runs one reply and prints its statistics to standard error.
func reply(_ model: LlamaModel, _ tokenizer: BytePairTokenizer, prompt: [Int32], options: GenerationOptions) throws -> Generation {
    let stream = TextStream(tokenizer: tokenizer)
    let started = DispatchTime.now().uptimeNanoseconds
    var firstToken: UInt64?
    let result = try model.generate([prompt], options: options, padToken: tokenizer.padTokenID ?? 0,
                                    decode: { tokenizer.decode($0, skipSpecialTokens: true) }) { _, token in
        if firstToken == nil { firstToken = DispatchTime.now().uptimeNanoseconds }
        stream.add(token)
    }[0]
    let ended = DispatchTime.now().uptimeNanoseconds
    let prefill = Double((firstToken ?? ended) - started) / 1e9
    let decode = Double(ended - (firstToken ?? ended)) / 1e9
    let decoded = max(result.tokens.count - 1, 0)
    printError(String(format: "\n%d prompt tokens in %.2f s (%.0f tokens/s), %d new tokens, %.1f tokens/s decoding; stopped: %@",
                      prompt.count, prefill, Double(prompt.count) / max(prefill, 1e-9), result.tokens.count,
                      decoded > 0 ? Double(decoded) / max(decode, 1e-9) : 0, result.finishReason))
    return result
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with a causal language model (the prompt goes in as a user message of the chat template).",
        discussion: "Example: peft generate --prompt \"What is the capital of France?\" --max-new-tokens 32 --temperature 0\nThe generated text goes to standard output, statistics to standard error.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var sampling: SamplingFlags
    @Option(help: "The prompt.") var prompt: String
    @Option(help: "A system message (default: the model's).") var system: String?
    @Flag(help: "Use the prompt as it is, without the chat template.") var raw = false

    func run() throws {
        try global.announce()
        let (model, tokenizer) = try sampling.load()
        let options = try sampling.options(eos: tokenizer.eosTokenID)
        let text: String
        if raw {
            text = prompt
        } else {
            let template = ChatTemplate(source: tokenizer.chatTemplateSource) ?? .smolLM2
            var messages = [ChatMessage(role: "user", content: prompt)]
            if let system { messages.insert(ChatMessage(role: "system", content: system), at: 0) }
            text = template.render(messages, addGenerationPrompt: true)
        }
        let ids = tokenizer.encode(text)
        guard !ids.isEmpty else { throw ValidationError("--prompt: the prompt has no tokens") }
        _ = try reply(model, tokenizer, prompt: ids, options: options)
        print("")
    }
}

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Chat with a causal language model on standard input (history kept; an empty line or end of input ends it).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var sampling: SamplingFlags
    @Option(help: "A system message (default: the model's).") var system: String?

    func run() throws {
        try global.announce()
        let (model, tokenizer) = try sampling.load()
        let options = try sampling.options(eos: tokenizer.eosTokenID)
        let template = ChatTemplate(source: tokenizer.chatTemplateSource) ?? .smolLM2
        var messages: [ChatMessage] = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        while true {
            FileHandle.standardError.write(Data("> ".utf8))
            guard let line = readLine(), !line.trimmingCharacters(in: .whitespaces).isEmpty else { break }
            messages.append(ChatMessage(role: "user", content: line))
            var ids = tokenizer.encode(template.render(messages, addGenerationPrompt: true))
            // Keep the conversation within the context: drop the oldest turns first.
            while ids.count + options.maxNewTokens > model.configuration.contextLength && messages.count > 1 {
                messages.removeFirst()
                ids = tokenizer.encode(template.render(messages, addGenerationPrompt: true))
            }
            let result = try reply(model, tokenizer, prompt: ids, options: options)
            print("")
            messages.append(ChatMessage(role: "assistant", content: tokenizer.decode(result.tokens, skipSpecialTokens: true)))
        }
    }
}

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "List the models.")
    func run() throws {
        for (name, summary) in PretrainedModels.summaries {
            print("\(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(summary)")
        }
    }
}

/// Refuses a language model name the library has no loader for, listing the ones it has.
func checkLanguageModelName(_ name: String) throws {
    guard PretrainedModels.languageNames.contains(name) else {
        throw ValidationError("unknown language model '\(name)'; choose one of: \(PretrainedModels.languageNames.joined(separator: ", "))")
    }
}

/// Loads the adapter directory `path` (saved by `peft train-lm`) into `model`, then folds it into the base weights
/// so that generation runs at the base model's speed (an adapter that cannot be merged runs unmerged).
func applyAdapter(_ path: String, to model: LlamaModel) throws {
    try ModuleAdapters.load(from: URL(fileURLWithPath: path), into: model)
    do { try Merging.mergeLinearAdapters(in: model) } catch { printError("the adapter runs unmerged (\(error))") }
}
