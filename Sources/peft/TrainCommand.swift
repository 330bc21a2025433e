import ArgumentParser
import Collectives
import Engine
import Foundation
import Methods
import Models
import Training

/// Method options on the command line: `--option key=value` (keys from the method's config, as `peft methods NAME`
/// lists them), and shorthand flags for the common ones.
struct MethodFlags: ParsableArguments {
    @Option(parsing: .unconditional, help: "Shorthand for --option r=N (LoRA, NEAT and Pear rank; SHiRA's peft sizing); also sets lora_alpha to N unless it is given.")
    var rank: Int?
    @Option(parsing: .unconditional, help: "Shorthand for --option lora_alpha=X (the update is scaled by alpha / r).") var alpha: Float?
    @Option(parsing: .unconditional, help: "Shorthand for --option density=X (SHiRA: fraction of each target weight that trains).") var density: Double?
    @Option(help: "Shorthand for --option target_modules=...: comma-separated names (suffix match), 're:<regex>' or 'all-linear'.")
    var targetModules: String?
    @Option(name: .customLong("option"), help: ArgumentHelp("A method option as key=value (repeatable; keys from `peft methods NAME`, peft's names where peft has the method, e.g. --option lora_alpha=16). Applied after the shorthand flags.", valueName: "key=value"))
    var assignments: [String] = []

    /// The shorthand flags that were given, as assignments.
    var shorthands: [(flag: String, key: String, value: String)] {
        var list: [(String, String, String)] = []
        if let rank { list.append(("--rank", "r", "\(rank)")) }
        if let alpha { list.append(("--alpha", "lora_alpha", "\(alpha)")) }
        if let density { list.append(("--density", "density", "\(density)")) }
        if let targetModules { list.append(("--target-modules", "target_modules", targetModules)) }
        return list
    }

    /// The configuration of `method`: the shorthand flags, then the `--option` assignments, checked against the
    /// method's options; the method's seed is `seed` unless an assignment sets it. With `strict`, a shorthand flag
    /// for an option the method does not have is refused; without (benchmarks over several methods), it applies to
    /// the methods that have it.
    func config(for method: String, seed: UInt64, strict: Bool = true) throws -> ConfigObject {
        let descriptor: MethodDescriptor
        do { descriptor = try MethodRegistry.descriptor(named: method) } catch { throw ValidationError("\(error)") }
        let keys = Set(descriptor.options.map(\.key))
        var prefix: [String] = []
        for shorthand in shorthands {
            guard keys.contains(shorthand.key) else {
                if strict { throw ValidationError("\(shorthand.flag): method '\(method)' has no option \(shorthand.key); see `peft methods \(method)`") }
                continue
            }
            prefix.append("\(shorthand.key)=\(shorthand.value)")
        }
        let assigned = Set(assignments.map { String($0.prefix { $0 != "=" }).trimmingCharacters(in: .whitespaces) })
        if let rank, alpha == nil, keys.contains("lora_alpha"), !assigned.contains("lora_alpha") {
            prefix.append("lora_alpha=\(rank)")
        }
        let own = strict ? assignments : assignments.filter { keys.contains(String($0.prefix { $0 != "=" }).trimmingCharacters(in: .whitespaces)) }
        var config = descriptor.seeded([:], with: seed)
        do { config = try descriptor.applying(prefix + own, to: config) } catch { throw ValidationError("\(error)") }
        return config
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune a pretrained model on a 1k task with a PEFT method and report test accuracy.",
        discussion: """
        Example: peft train --model dinov2-s14 --task fmnist-1k --method lora --rank 8 --epochs 20 --out runs/x
        Writes checkpoint.safetensors (every epoch, atomically), log.jsonl, best.safetensors and result.json to --out.
        See `peft tasks` and `peft methods` for the names.
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Backbone: a name (`peft models`; default dinov2-s14 for images, minilm-l6 for texts) or a Hugging Face model folder (config.json + model.safetensors or its shards; DINOv2, ViT or BERT of any size).") var model: String?
    @Option(help: "Task name (see `peft tasks`).") var task = TrainingConfiguration().task
    @Option(help: "Your own data instead of --task: a folder with one subfolder of PNG/JPEG images per class (split 80/10/10 by --seed) or with train/, validation/ and test/ folders of class folders; or a CSV/JSONL file of 'text' and 'label' (split the same way), or a folder of train/validation/test .csv or .jsonl files.")
    var data: String?
    @Flag(help: "With --data: skip images that cannot be decoded and text rows that are bad on their own (counted and listed) instead of stopping.") var skipBad = false
    @Option(help: "PEFT method (see `peft methods`).") var method = TrainingConfiguration().method
    @OptionGroup var methodFlags: MethodFlags
    @Option(parsing: .unconditional, help: "Training epochs over the 800 training examples.") var epochs = TrainingConfiguration().epochs
    @Option(parsing: .unconditional, help: "Batch size.") var batchSize = 32
    @Option(parsing: .unconditional, help: "Learning rate (default: per method, e.g. 1e-3 for LoRA, 2e-5 for full fine-tuning).") var lr: Float?
    @Option(parsing: .unconditional, help: "Learning rate of the classification head (default: max(lr, 1e-3)).") var headLr: Float?
    @Option(parsing: .unconditional, help: "AdamW weight decay (matrices only).") var weightDecay: Float = 0.05
    @Option(parsing: .unconditional, help: "Warm-up epochs (linear), then cosine decay.") var warmupEpochs: Float = 1
    @Option(parsing: .unconditional, help: "Label smoothing.") var labelSmoothing: Float = 0.1
    @Option(parsing: .unconditional, help: "Clip the global gradient norm to this value (0: off).") var clipNorm: Float = 1
    @Option(parsing: .unconditional, help: "Image side in pixels (a multiple of the patch size).") var resolution = 112
    @Flag(help: "Random horizontal flips of training images.") var flip = false
    @Option(help: "Module names of the saved adapter: transformers 5 (default, what peft matches on current transformers) or 4.")
    var transformersNames: String = TransformersNaming.current.rawValue
    @Option(parsing: .unconditional, help: "Seed for initialisation, data order and augmentation.") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Evaluate on validation every N epochs.") var evalEvery = 1
    @Option(parsing: .unconditional, help: "Stop each epoch after N batches (quick checks).") var maxSteps: Int?
    @Option(parsing: .unconditional, help: "Evaluate on at most N validation/test examples (quick checks).") var maxEval: Int?
    @Option(help: "Output directory (default: runs/latest, replaced by every run that does not name one).") var out: String?
    @Flag(help: "Continue the run in --out from its last checkpoint.") var resume = false
    @Flag(help: "Replace a run already in --out (without it such a directory is refused).") var overwrite = false
    @Option(help: "On a NaN/Inf loss, gradient or update: stop (default) or skip the step and halve the learning rate.")
    var onNonfinite: NonFiniteAction = .stop
    @Option(parsing: .unconditional, help: "With --on-nonfinite skip: give up after this many consecutive skipped steps.") var maxSkips = 5

    func run() throws {
        let group = try joinProcessGroup(verbose: global.verbose)
        try global.announce(quiet: !group.isLeader)
        var configuration = TrainingConfiguration()
        if data == nil && skipBad { throw ValidationError("--skip-bad applies to --data only") }
        configuration.model = try model.map { HuggingFaceFolder.isFolder($0) ? URL(fileURLWithPath: $0).standardizedFileURL.path : $0 } ?? data.map { TextDataset.isText(URL(fileURLWithPath: $0)) ? "minilm-l6" : "dinov2-s14" }
            ?? TrainingSession.defaultModel(forTask: task)
        configuration.task = data.map { "folder:" + URL(fileURLWithPath: $0).standardizedFileURL.lastPathComponent } ?? task
        configuration.data = data.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        configuration.skipBadExamples = skipBad
        configuration.method = method
        configuration.methodConfig = try methodFlags.config(for: method, seed: seed)
        configuration.epochs = epochs
        configuration.batchSize = batchSize
        configuration.learningRate = lr
        configuration.headLearningRate = headLr
        configuration.weightDecay = weightDecay
        configuration.warmupEpochs = warmupEpochs
        configuration.labelSmoothing = labelSmoothing
        configuration.clipNorm = clipNorm
        configuration.resolution = resolution
        configuration.horizontalFlip = flip
        guard let naming = TransformersNaming(rawValue: transformersNames) else {
            throw ValidationError("--transformers-names must be 5 or 4, got '\(transformersNames)'")
        }
        configuration.adapterNaming = naming
        configuration.seed = seed
        configuration.evaluateEvery = evalEvery
        configuration.maxStepsPerEpoch = maxSteps
        configuration.maxEvaluationExamples = maxEval
        configuration.onNonFinite = onNonfinite
        configuration.maxConsecutiveSkips = maxSkips
        let out = self.out ?? "runs/latest"
        let leader = group.isLeader
        let say: (String) -> Void = { if leader { printError($0) } }
        say("train: \(configuration.model) on \(configuration.data ?? task) with \(method), \(epochs) epochs, batch \(batchSize), lr \(configuration.resolvedLearningRate), \(resolution) px -> \(out)"
            + (group.isDistributed ? " on \(group.size) ranks (\(Parallel.workerCount) thread\(Parallel.workerCount == 1 ? "" : "s") each)" : ""))
        let trainer = try TrainingSession.trainer(configuration, outputDirectory: URL(fileURLWithPath: out), progress: say)
        trainer.group = group
        // The default folder is a scratch "latest run": a new run there replaces the previous one.
        let result = try trainer.run(resume: resume, overwrite: overwrite || (self.out == nil && !resume))
        if group.isDistributed {
            say(String(format: "gradient allreduce: %.3f s per step, %.2f MB per step and rank", trainer.reductionSeconds / Double(max(1, trainer.reducedSteps)),
                       Double(trainer.reductionBytes) / Double(max(1, trainer.reducedSteps)) / 1e6))
        }
        group.finalize()
        guard group.isLeader else { return }
        print(String(format: "%@ %@ %@: test accuracy %.2f%% | best val %.2f%% (epoch %d) | trainable %d of %d | %.3f s/step, %.1f img/s",
                     configuration.model, configuration.task, method, 100 * result.testAccuracy, 100 * result.bestValidationAccuracy,
                     result.bestEpoch, result.trainableParameters, result.totalParameters, result.secondsPerStep,
                     result.examplesPerSecond))
    }
}

struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List the 1k tasks.")
    func run() throws {
        for name in TaskRegistry.names {
            print("\(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \((try? TaskRegistry.kind(of: name).rawValue) ?? "")  \(TaskRegistry.summary(of: name))")
        }
    }
}

struct MethodsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "methods", abstract: "List the PEFT methods, or one method's options (peft methods NAME).")
    @Argument(help: "A method whose options to print.") var name: String?

    func run() throws {
        guard let name else {
            for (name, description) in MethodRegistry.descriptions {
                print("\(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(description)")
            }
            return
        }
        let descriptor: MethodDescriptor
        do { descriptor = try MethodRegistry.descriptor(named: name) } catch { throw ValidationError("\(error)") }
        print("\(descriptor.name): \(descriptor.summary)")
        let capabilities = descriptor.capabilities.map(\.rawValue).sorted()
        print("peft type \(descriptor.adapterPeftType); default learning rate \(descriptor.defaultLearningRate)"
              + (capabilities.isEmpty ? "" : "; " + capabilities.joined(separator: ", ")))
        guard !descriptor.options.isEmpty else { print("no options"); return }
        print("options (--option key=value):")
        let defaults = descriptor.defaults()
        let width = descriptor.options.map(\.key.count).max() ?? 0
        for spec in descriptor.options {
            let key = spec.key.padding(toLength: width, withPad: " ", startingAt: 0)
            let kind = spec.kind.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
            print("  \(key)  \(kind)  default \(defaults[spec.key] ?? "unset")  \(spec.help)")
        }
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Accuracy of a run's best weights on its task's test (or another) split.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Run directory written by `peft train --out`.") var runDirectory: String
    @Option(help: "Split: test, validation or train.") var split = "test"

    func run() throws {
        try global.announce()
        let accuracy = try RunEvaluation.accuracy(of: URL(fileURLWithPath: runDirectory), split: split, progress: printError)
        print(String(format: "%@: %@ accuracy %.2f%%", runDirectory, split, 100 * accuracy))
    }
}

extension NonFiniteAction: ExpressibleByArgument {}
