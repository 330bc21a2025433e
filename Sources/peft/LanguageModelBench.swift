import ArgumentParser
import Engine
import Foundation
import Models

/// Prefill and decode speed of a causal language model, the table BENCHMARKS.md reports.
struct LanguageModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm", abstract: "Tokens per second of a causal LM: prefill (batch 1 and 8, 128 tokens) and greedy decode with the KV cache.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Language model.") var model = "smollm2-135m"
    @Option(parsing: .upToNextOption, help: "Batch sizes.") var batches: [Int] = [1, 8]
    @Option(help: "Prompt tokens per row.") var promptTokens = 128
    @Option(help: "New tokens per row in the decode measurement.") var newTokens = 64
    @Option(help: "Timed repeats (median reported).") var repeats = 3
    @Option(parsing: .upToNextOption, help: "Weight storages to measure (quantized, float32).") var weights: [WeightStorage] = [.quantized, .float32]

    func run() throws {
        try global.announce()
        print("| weights | projection MB | batch | prefill tokens/s (\(promptTokens) tokens per row) | decode tokens/s (\(newTokens) new per row, all rows) |")
        print("|---|---|---|---|---|")
        for storage in weights {
            let (llm, _) = try PretrainedModels.languageModel(named: model, quantizedWeights: storage == .quantized)
            let projections = llm.decoder.blocks.flatMap { [$0.attention.query, $0.attention.key, $0.attention.value,
                                                            $0.attention.output, $0.mlp.gate, $0.mlp.up, $0.mlp.down] }
            let bytes = projections.reduce(0) { $0 + ($1.computesQuantized ? $1.quantizedWeight?.byteCount ?? 0 : $1.weight.count * 4) }
            try measure(llm, label: "\(storage.rawValue) | \(String(format: "%.0f", Double(bytes) / 1e6))")
        }
    }

    func measure(_ llm: LlamaModel, label: String) throws {
        var generator = RandomGenerator(seed: 1)
        for batch in batches {
            let rows = (0..<batch).map { _ in (0..<promptTokens).map { _ in Int32(17 + generator.next() % 40_000) } }
            let prefill = medianSeconds(repeats: repeats) {
                _ = Autograd.withoutGrad { try? llm.logits(rows) }
            }
            var options = GenerationOptions()
            options.maxNewTokens = newTokens
            var decodeSeconds: [Double] = []
            for _ in 0..<repeats {
                var first: UInt64?
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try llm.generate(rows, options: options, onToken: { row, _ in
                    if first == nil && row == 0 { first = DispatchTime.now().uptimeNanoseconds }
                })
                let end = DispatchTime.now().uptimeNanoseconds
                decodeSeconds.append(Double(end - (first ?? start)) / 1e9)
            }
            let decode = decodeSeconds.sorted()[decodeSeconds.count / 2]
            print(String(format: "| %@ | %d | %.0f | %.1f |", label, batch, Double(batch * promptTokens) / prefill,
                         Double(batch * (newTokens - 1)) / decode))
        }
    }
}
