import ArgumentParser
import Dispatch
import Foundation
import Methods
import Models
import Training

/// `peft eval-lm`: exact-match accuracy of the causal LM's greedy answers on a language task.
struct EvaluateLanguageModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-lm",
        abstract: "Score a causal language model (optionally with an adapter) on a language task by exact match of its greedy answers.",
        discussion: "Example: peft eval-lm --task add-lm (the base model's zero-shot score), then peft eval-lm --task add-lm --adapter runs/add\nTasks: \(LanguageTasks.names.map { LanguageTasks.summary(of: $0) }.joined(separator: "; ")).")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Language model (see `peft models`).") var model = "smollm2-135m"
    @Option(help: "The task: \(LanguageTasks.names.joined(separator: ", ")).") var task: String
    @Option(help: "An adapter directory (from `peft train-lm`).") var adapter: String?
    @Option(help: "Split: test (fixed) or validation (drawn with --seed).") var split = "test"
    @Option(parsing: .unconditional, help: "Score only the first N examples (0: all).") var limit = 0
    @Option(parsing: .unconditional, help: "Prompts generated together.") var batch = 8
    @Option(parsing: .unconditional, help: "Seed of the validation split.") var seed: UInt64 = 0
    @Option(name: .customLong("max-new-tokens"), parsing: .unconditional, help: "At most this many answer tokens.") var maxNewTokens = 32

    func validate() throws {
        guard LanguageTasks.names.contains(task) else {
            throw ValidationError("--task: unknown language task '\(task)'; valid: \(LanguageTasks.names.joined(separator: ", "))")
        }
        guard ["test", "validation"].contains(split) else { throw ValidationError("--split must be test or validation") }
        guard limit >= 0 else { throw ValidationError("--limit must be 0 or more") }
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be 1...256") }
        guard (1...512).contains(maxNewTokens) else { throw ValidationError("--max-new-tokens must be 1...512") }
        try checkLanguageModelName(model)
    }

    func run() throws {
        try global.announce()
        let loadedTask = try LanguageTasks.task(named: task, seed: seed)
        var examples = split == "test" ? loadedTask.test : loadedTask.validation
        if limit > 0 { examples = Array(examples.prefix(limit)) }
        let (network, tokenizer) = try PretrainedModels.languageModel(named: model)
        if let adapter { try applyAdapter(adapter, to: network) }
        let template = ChatTemplate(source: tokenizer.chatTemplateSource) ?? .smolLM2
        var options = GenerationOptions()
        options.maxNewTokens = maxNewTokens
        options.stopTokens = tokenizer.eosTokenID.map { [$0] } ?? []
        let started = DispatchTime.now().uptimeNanoseconds
        var correct = 0, shown = 0
        var start = 0
        while start < examples.count {
            let chunk = Array(examples[start..<min(start + batch, examples.count)])
            let prompts = chunk.map {
                tokenizer.encode(template.render([ChatMessage(role: "user", content: $0.prompt)], addGenerationPrompt: true))
            }
            let results = try network.generate(prompts, options: options, padToken: tokenizer.padTokenID ?? 0,
                                               decode: { tokenizer.decode($0, skipSpecialTokens: true) })
            for (example, result) in zip(chunk, results) {
                let text = tokenizer.decode(result.tokens, skipSpecialTokens: true)
                let right = LanguageTask.isCorrect(text, answer: example.answer)
                if right { correct += 1 }
                if shown < 3 {
                    printError("\(right ? "right" : "wrong"): \(example.prompt) -> \(text.debugDescription) (expected \(example.answer))")
                    shown += 1
                }
            }
            start += batch
            printError(String(format: "%d/%d scored, %.1f%% so far", start > examples.count ? examples.count : start,
                              examples.count, 100 * Double(correct) / Double(min(start, examples.count))))
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        print(String(format: "%@ %@ (%d examples): exact match %.1f%% (%d right) in %.0f s", task, split, examples.count,
                     100 * Double(correct) / Double(max(examples.count, 1)), correct, seconds))
    }
}
