import ArgumentParser
import Collectives
import Dispatch
import Engine
import Foundation
import Methods
import Models
import Training

/// `peft train-lm`: fine-tune the causal language model with a PEFT method on JSONL instruction data.
struct TrainLanguageModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-lm",
        abstract: "Fine-tune a causal language model with a PEFT method on JSONL instruction data.",
        discussion: """
        Example: peft train-lm --data train.jsonl --method lora --rank 8 --target-modules q_proj,v_proj --epochs 1 --out runs/lm
        Each line of --data is {"prompt": ..., "completion": ...}, {"messages": [{"role": ..., "content": ...}, ...]} or
        {"text": ...}; the loss counts the completion, the assistant's messages, or all text. Writes the adapter in the
        peft layout (task_type CAUSAL_LM, transformers' LlamaForCausalLM module names) to --out, atomically, with
        result.json; `peft generate --adapter DIR` uses it.
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Language model (see `peft models`).") var model = "smollm2-135m"
    @Option(help: "Training data: a JSONL file (or use --task).") var data: String?
    @Option(help: "A language task instead of --data: \(LanguageTasks.names.joined(separator: ", ")) (its train split; validation from its validation split).")
    var task: String?
    @Option(help: "Validation data (JSONL); without it, a seeded 5% of --data when it has at least 20 examples.") var validation: String?
    @Option(help: "PEFT method that adapts linear layers by name: lora, shira, neat, ia3.") var method = "lora"
    @OptionGroup var methodFlags: MethodFlags
    @Option(parsing: .unconditional, help: "Passes over the training data.") var epochs = 1
    @Option(name: .customLong("max-steps"), parsing: .unconditional, help: "Stop after this many steps (0: no limit).") var maxSteps = 0
    @Option(parsing: .unconditional, help: "Examples per step.") var batch = 8
    @Option(parsing: .unconditional, help: "Peak learning rate (AdamW, linear warm-up, cosine decay).") var lr: Float = 2e-4
    @Option(name: .customLong("warmup-steps"), parsing: .unconditional, help: "Linear warm-up steps.") var warmupSteps = 10
    @Option(name: .customLong("max-tokens"), parsing: .unconditional, help: "Examples are cut to this many tokens.") var maxTokens = 256
    @Option(help: "How prompt-completion pairs are shown to the model: chat (a user message and the assistant's reply, as `peft generate` prompts) or plain (prompt text then completion).")
    var format = "chat"
    @Option(parsing: .unconditional, help: "Seed for initialisation, masks and data order.") var seed: UInt64 = 0
    @Option(name: .customLong("log-every"), parsing: .unconditional, help: "Print the loss every this many steps.") var logEvery = 10
    @Option(help: "Output directory for the adapter and result.json.") var out: String
    @Option(help: "float32: expand the frozen base at load; quantized: keep the GGUF's quantised projections as they are (QLoRA-style with --method lora; other methods expand the layers they adapt).")
    var base: WeightStorage = .float32
    @Flag(name: .customLong("gradient-checkpointing"), help: "Keep only each block's input in the forward and recompute the block in the backward: activation memory of one block instead of all, for one more forward pass per step (about 10% slower).")
    var gradientCheckpointing = false
    @Option(name: .customLong("checkpoint-every"), parsing: .unconditional, help: "Also write the checkpoint (trainable weights, optimiser state, counters; always written at the end of each epoch) every this many steps (0: epoch ends only).")
    var checkpointEvery = 50
    @Flag(help: "Continue the run whose checkpoint --out holds (after a kill or a failure), with the same settings; it ends with the weights an uninterrupted run would have.")
    var resume = false
    @Flag(help: "Replace what --out holds (without it, a non-empty --out is refused).") var overwrite = false

    func validate() throws {
        guard (data == nil) != (task == nil) else { throw ValidationError("give exactly one of --data FILE and --task NAME") }
        if let task, !LanguageTasks.names.contains(task) {
            throw ValidationError("--task: unknown language task '\(task)'; valid: \(LanguageTasks.names.joined(separator: ", "))")
        }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard maxSteps >= 0 else { throw ValidationError("--max-steps must be 0 or more") }
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be 1...4096") }
        guard lr.isFinite && lr > 0 else { throw ValidationError("--lr must be a positive number") }
        guard warmupSteps >= 0 else { throw ValidationError("--warmup-steps must be 0 or more") }
        guard (2...8192).contains(maxTokens) else { throw ValidationError("--max-tokens must be 2...8192") }
        guard ["chat", "plain"].contains(format) else { throw ValidationError("--format must be chat or plain") }
        guard logEvery >= 1 else { throw ValidationError("--log-every must be at least 1") }
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be 0 or more") }
        guard !(resume && overwrite) else { throw ValidationError("--resume continues what --out holds and --overwrite replaces it: give one of them") }
        try checkLanguageModelName(model)
    }

    /// The method's config: the flags, with q_proj, v_proj as the targets when none are given (peft's default
    /// for Llama).
    func methodConfig() throws -> ConfigObject {
        var flags = methodFlags
        let assigned = flags.assignments.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("target_modules") }
        if flags.targetModules == nil && !assigned { flags.targetModules = method == "ia3" ? "k_proj,v_proj,down_proj" : "q_proj,v_proj" }
        if method == "ia3", !flags.assignments.contains(where: { $0.hasPrefix("feedforward_modules") }) {
            flags.assignments.append("feedforward_modules=down_proj")
        }
        return try flags.config(for: method, seed: seed)
    }

    func run() throws {
        let ranks: Int
        do { ranks = try ProcessGroup.launchedSize(environment: ProcessInfo.processInfo.environment) } catch { throw ValidationError("\(error)") }
        guard ranks == 1 else {
            throw ValidationError("train-lm does not train data-parallel yet; run it as one process, without mpirun (peft train and peft bench suite do run under mpirun)")
        }
        try global.announce()
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        guard overwrite || resume || existing.isEmpty else {
            throw ValidationError("--out \(out) already holds files (\(existing.sorted().prefix(3).joined(separator: ", "))); choose another folder, pass --overwrite, or --resume to continue its run")
        }
        let checkpointURL = URL(fileURLWithPath: out).appendingPathComponent(LanguageTrainingState.fileName)
        if resume && !FileManager.default.fileExists(atPath: checkpointURL.path) {
            throw ValidationError("--resume: \(checkpointURL.path) does not exist; there is no run to continue in --out \(out)")
        }
        guard ModuleAdapters.moduleMethods.contains(method) else {
            throw ValidationError("--method \(method): not a method that adapts a language model's linear layers; use one of: \(ModuleAdapters.moduleMethods.joined(separator: ", "))")
        }
        let config = try methodConfig()
        let outURL = URL(fileURLWithPath: out)
        var trainExamples: [InstructionExample]
        var validationExamples: [InstructionExample] = []
        let source = data ?? task ?? ""
        if let task {
            let loaded = try LanguageTasks.task(named: task, seed: seed)
            trainExamples = LanguageTask.instructions(loaded.train)
            validationExamples = LanguageTask.instructions(loaded.validation)
        } else {
            trainExamples = try InstructionData.read(URL(fileURLWithPath: source))
        }
        if let validation {
            validationExamples = try InstructionData.read(URL(fileURLWithPath: validation))
        } else if task == nil && trainExamples.count >= 20 {
            var generator = RandomGenerator(seed: seed &+ 17)
            let held = Set((0..<trainExamples.count).shuffled(using: &generator).prefix(max(1, trainExamples.count / 20)))
            validationExamples = held.sorted().map { trainExamples[$0] }
            trainExamples = trainExamples.indices.filter { !held.contains($0) }.map { trainExamples[$0] }
        }

        let started = DispatchTime.now().uptimeNanoseconds
        let (network, tokenizer) = try PretrainedModels.languageModel(named: model, quantizedWeights: base == .quantized)
        printError(String(format: "loaded %@ (%@ base) in %.1f s", model, base.rawValue, seconds(since: started)))
        network.gradientCheckpointing = gradientCheckpointing
        let template = ChatTemplate(source: tokenizer.chatTemplateSource) ?? .smolLM2
        let encoder = InstructionTokenizer(tokenizer: tokenizer, template: template, chat: format == "chat",
                                           maximumTokens: maxTokens)
        let train = try tokenize(trainExamples, with: encoder, what: source)
        let held = validationExamples.isEmpty ? [] : try tokenize(validationExamples, with: encoder, what: validation ?? "validation split")

        guard let adapting = try MethodRegistry.method(named: method, config: config) as? any ModuleAdaptingMethod else {
            throw ValidationError("--method \(method): adapts classifiers only; on a language model use one of: \(ModuleAdapters.moduleMethods.joined(separator: ", "))")
        }
        let targets = try adapting.attach(to: network)
        let trainable = network.namedParameters().filter { $0.1.requiresGrad }.reduce(0) { $0 + $1.1.count }
        let total = network.namedParameters().reduce(0) { $0 + $1.1.count } + network.quantizedParameterCount
        printError("\(method) on \(targets.count) layers; \(trainable) trainable parameters (\(String(format: "%.3f", 100 * Double(trainable) / Double(total)))% of \(total))")

        let padToken = tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0
        let stepsPerEpoch = (train.count + batch - 1) / batch
        let plannedSteps = maxSteps > 0 ? min(maxSteps, stepsPerEpoch * epochs) : stepsPerEpoch * epochs
        let trainer = try LossTrainer(module: network, learningRate: lr, totalSteps: plannedSteps,
                                      warmupSteps: min(warmupSteps, plannedSteps), seed: seed)
        printError("\(train.count) training examples, \(held.count) validation; \(plannedSteps) steps of \(batch)")
        // Everything that decides the run's numbers; a resumed run must agree on all of it.
        let configJSON = try JSONEncoder.sortedKeys.encode(config)
        let settings: [String: String] = [
            "model": model, "method": method, "config": String(decoding: configJSON, as: UTF8.self),
            "data": data ?? "", "task": task ?? "", "validation": validation ?? "", "seed": "\(seed)", "batch": "\(batch)",
            "lr": "\(lr)", "warmup_steps": "\(warmupSteps)", "max_tokens": "\(maxTokens)", "format": format,
            "base": base.rawValue, "epochs": "\(epochs)", "max_steps": "\(maxSteps)",
        ]
        let trainableNamed = network.namedParameters().filter { $0.1.requiresGrad }
        var history: [LanguageLogRecord] = []
        var completedEpochs = 0, bestEpoch: Int?, bestValidationLoss: Double?
        var best: [String: Tensor] = [:]
        var resumedStep = 0
        if resume {
            let (state, tensors) = try LanguageModelCheckpoint.read(checkpointURL)
            let changes = state.differences(from: settings)
            guard changes.isEmpty else {
                throw ValidationError("\(checkpointURL.path): made by a run with other settings (\(changes.joined(separator: "; "))); resume with the checkpoint's settings or use another --out")
            }
            try state.validate(path: checkpointURL.path, plannedSteps: plannedSteps, epochs: epochs)
            for (name, parameter) in trainableNamed {
                guard let value = tensors["param.\(name)"], value.shape == parameter.shape else {
                    throw ValidationError("\(checkpointURL.path): tensor 'param.\(name)' is missing or has the wrong shape")
                }
                parameter.assign(value)
                if let kept = tensors["best.\(name)"], kept.shape == parameter.shape { best[name] = kept.copy() }
            }
            do {
                try trainer.restore(optimizer: tensors, completedSteps: state.completedSteps,
                                    optimizerStep: state.optimizerStep, source: checkpointURL.path)
            } catch { throw ValidationError("\(error)") }
            resumedStep = state.completedSteps
            completedEpochs = state.completedEpochs
            bestEpoch = state.bestEpoch
            bestValidationLoss = state.bestValidationLoss
            history = state.history
            printError("resuming from step \(resumedStep) of \(plannedSteps) (\(completedEpochs) epochs done) from \(checkpointURL.path)")
        }
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        let log = LanguageLog(url: outURL.appendingPathComponent("log.jsonl"))
        func record(_ entry: LanguageLogRecord) throws {
            history.append(entry)
            try log.append(entry)
        }
        func saveCheckpoint(step: Int) throws {
            // The step never applies a non-finite update; this keeps a NaN state from replacing a good file anyway.
            if let bad = trainer.optimizer.firstNonFiniteState() {
                throw ValidationError("'\(bad)' (or its optimiser state) holds NaN or infinity at step \(step); \(checkpointURL.path) was not overwritten")
            }
            let trainerState = trainer.state
            let state = LanguageTrainingState(settings: settings, completedSteps: step, optimizerStep: trainerState.optimizerStep,
                                              completedEpochs: completedEpochs, bestEpoch: bestEpoch,
                                              bestValidationLoss: bestValidationLoss, history: history)
            try LanguageModelCheckpoint.write(state, parameters: trainableNamed, best: best, optimizer: trainerState.optimizer,
                                              to: checkpointURL)
        }
        var step = 0
        let trainingStarted = DispatchTime.now().uptimeNanoseconds
        var tokensSeen = 0, windowLoss = 0.0, windowSteps = 0
        for epoch in 0..<epochs {
            if epoch < completedEpochs { step += stepsPerEpoch; continue }  // done before the resume
            for batchData in LanguageBatches.epoch(train, batchSize: batch, padToken: padToken, seed: seed, epoch: epoch) {
                if step >= plannedSteps { break }
                if step < resumedStep { step += 1; continue }  // trained before the resume: same order, same batches
                var failure: Error?
                let loss: Float
                do {
                    loss = try trainer.step {
                        do {
                            return try network.languageModelLoss(batchData.ids, attentionMask: batchData.attentionMask,
                                                                 lossMask: batchData.lossMask)
                        } catch {
                            failure = error
                            return Tensor(shape: [1], values: [.nan])
                        }
                    }
                } catch {
                    throw failure ?? error
                }
                step += 1
                tokensSeen += batchData.realTokens
                windowLoss += Double(loss); windowSteps += 1
                if step % logEvery == 0 || step == plannedSteps {
                    let elapsed = seconds(since: trainingStarted)
                    let remaining = elapsed / Double(max(step - resumedStep, 1)) * Double(plannedSteps - step)
                    printError(String(format: "step %d/%d  epoch %d  loss %.4f  %.0f tokens/s  ETA %@", step, plannedSteps,
                                      epoch + 1, windowLoss / Double(windowSteps), Double(tokensSeen) / max(elapsed, 1e-9),
                                      Self.clock(remaining)))
                    try record(LanguageLogRecord(step: step, epoch: epoch + 1, trainLoss: windowLoss / Double(windowSteps)))
                    windowLoss = 0; windowSteps = 0
                }
                if checkpointEvery > 0 && step % checkpointEvery == 0 && step < plannedSteps { try saveCheckpoint(step: step) }
            }
            if !held.isEmpty {
                let loss = try validationLoss(network, held, padToken: padToken)
                printError(String(format: "epoch %d: validation loss %.4f (perplexity %.2f)", epoch + 1, loss, exp(loss)))
                try record(LanguageLogRecord(epoch: epoch + 1, validationLoss: loss))
                if loss < (bestValidationLoss ?? .infinity) {
                    bestValidationLoss = loss
                    bestEpoch = epoch + 1
                    best = Dictionary(uniqueKeysWithValues: trainableNamed.map { ($0.0, $0.1.copy()) })
                }
            }
            completedEpochs = epoch + 1
            try saveCheckpoint(step: step)
            if step >= plannedSteps { break }  // --max-steps reached (the validation above still ran)
        }
        // Validation selection: the adapter holds the weights of the epoch with the lowest validation loss.
        if let bestEpoch, bestEpoch < completedEpochs {
            for (name, parameter) in trainableNamed { if let kept = best[name] { parameter.assign(kept) } }
            printError(String(format: "kept the weights of epoch %d (validation loss %.4f), the lowest", bestEpoch, bestValidationLoss ?? 0))
        }
        try ModuleAdapters.save(network, method: adapting, baseModel: PretrainedModels.languageHubID(of: model),
                                taskType: "CAUSAL_LM", to: outURL, preserving: [LanguageTrainingState.fileName, "log.jsonl"])
        let result: [String: Any] = [
            "model": model, "method": method, "data": source, "steps": step, "epochs": epochs,
            "train_examples": train.count, "validation_examples": held.count, "trainable_parameters": trainable,
            "seconds": seconds(since: trainingStarted),
            "history": try JSONSerialization.jsonObject(with: JSONEncoder.sortedKeys.encode(history)),
            "best_epoch": bestEpoch.map { $0 as Any } ?? NSNull(), "resumed_from_step": resumedStep,
        ]
        let json = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: outURL.appendingPathComponent("result.json"), options: .atomic)
        printError("wrote the adapter to \(out)")
    }

    /// Token ids and targets of `examples`, reporting what was cut and refusing examples with nothing to learn.
    func tokenize(_ examples: [InstructionExample], with encoder: InstructionTokenizer, what: String) throws -> [TokenizedExample] {
        var result: [TokenizedExample] = []
        var truncated = 0, empty = 0
        for example in examples {
            let (tokenized, cut) = encoder.tokenize(example)
            if cut { truncated += 1 }
            if tokenized.targetCount == 0 { empty += 1; continue }
            result.append(tokenized)
        }
        if truncated > 0 {
            printError("\(what): \(truncated) of \(examples.count) examples were cut to --max-tokens \(encoder.maximumTokens)")
        }
        if empty > 0 {
            printError("\(what): \(empty) examples had no target token left after cutting and were left out")
        }
        guard !result.isEmpty else { throw ValidationError("\(what): no example has a token to learn (raise --max-tokens?)") }
        return result
    }

    /// Mean loss per target token over `examples`, without gradients.
    func validationLoss(_ network: LlamaModel, _ examples: [TokenizedExample], padToken: Int32) throws -> Double {
        var weighted = 0.0, count = 0
        var start = 0
        while start < examples.count {
            let chunk = Array(examples[start..<min(start + batch, examples.count)])
            let padded = LanguageBatches.pad(chunk, padToken: padToken)
            let targets = chunk.reduce(0) { $0 + $1.targetCount }
            let loss = try Autograd.withoutGrad {
                try network.languageModelLoss(padded.ids, attentionMask: padded.attentionMask, lossMask: padded.lossMask).item
            }
            weighted += Double(loss) * Double(targets)
            count += targets
            start += batch
        }
        return weighted / Double(max(count, 1))
    }

    private func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    /// "1h02m", "3m05s" or "12s".
    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total >= 3600 { return String(format: "%dh%02dm", total / 3600, (total % 3600) / 60) }
        if total >= 60 { return String(format: "%dm%02ds", total / 60, total % 60) }
        return "\(total)s"
    }
}
