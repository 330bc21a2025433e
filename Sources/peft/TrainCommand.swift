import ArgumentParser
import Foundation
import Methods
import Models
import Training

/// Method options as command-line flags.
struct MethodFlags: ParsableArguments {
    @Option(parsing: .unconditional, help: "LoRA rank r.") var rank = 8
    @Option(parsing: .unconditional, help: "LoRA alpha (update scaled by alpha / r; default: r).") var alpha: Float?
    @Option(name: .customLong("lora-dropout"), parsing: .unconditional, help: "Dropout on the LoRA input.") var loraDropout: Float = 0
    @Flag(name: .customLong("rslora"), help: "LoRA: scale the update by alpha / sqrt(r) (rsLoRA) instead of alpha / r.") var rsLoRA = false
    @Flag(name: .customLong("dora"), help: "LoRA: weight-decomposed LoRA (DoRA), a trainable magnitude per output feature.") var doRA = false
    @Option(help: "Target Linear layers: comma-separated names (suffix match), 're:<regex>' or 'all-linear'.")
    var targetModules = "query,value"
    @Option(parsing: .unconditional, help: "Bottleneck adapter width.") var adapterWidth = 8
    @Option(parsing: .unconditional, help: "Bottleneck adapter output scale.") var adapterScale: Float = 0.1
    @Option(parsing: .unconditional, help: "VPT prompt tokens per layer.") var prompts = 10
    @Option(parsing: .unconditional, help: "SHiRA: fraction of each target weight that trains.") var density: Double = 0.01
    @Option(help: "SHiRA mask: struct, rand, wm, grad or snip.") var mask = "rand"
    @Option(help: "SHiRA target Linear layers (same syntax as --target-modules).") var shiraTargets = "all-linear"
    @Option(parsing: .unconditional, help: "SHiRA rand mask: block of positions taken from the seeded order (same seed, other part: disjoint mask).")
    var maskPart = 0
    @Option(parsing: .unconditional, help: "NEAT: encoder/decoder pairs (0: depth 2; 1: depth 4, ...).") var neatPairs = 0
    @Option(parsing: .unconditional, help: "NEAT: update multiplier s.") var neatScale: Float = 1
    @Flag(help: "RLRR: start as the pretrained model instead of the released code's random init.") var identityStart = false
    @Option(parsing: .unconditional, help: "TTC/Pear: fraction of the epochs in the first stage (LayerNorm stage / warm-up).") var stageFraction: Float = 0.3
    @Option(parsing: .unconditional, help: "TTC/Pear: batches used for Taylor scoring.") var scoringBatches = 8
    @Option(parsing: .unconditional, help: "TTC: channels per layer (default width / 8).") var channels: Int?
    @Flag(help: "TTC: select the global top channels instead of per layer.") var globalChannels = false
    @Flag(help: "TTC: start the channel maps at zero.") var zeroInitMaps = false
    @Flag(help: "TTC: freeze the LayerNorms in stage 2.") var freezeNorms = false
    @Option(parsing: .unconditional, help: "Pear: fraction of adapters pruned.") var pruneFraction: Float = 0.5
    @Option(help: "Pear: importance score: taylor, l1 or frobenius.") var pearScore = "taylor"
    @Option(help: "Pear: sharing policy: best-same-type or nearest.") var pearSharing = "best-same-type"
    @Flag(help: "Pear: no learnable gates on shared positions.") var noGates = false
    @Flag(help: "Pear: no knowledge checkpoint (the ablation).") var noKnowledgeCheckpoint = false
    @Option(name: .customLong("option"), help: ArgumentHelp("A method option as key=value (repeatable; keys from `peft methods NAME`, peft's names where peft has the method, e.g. --option lora_alpha=16). Applied after the flags above.", valueName: "key=value"))
    var assignments: [String] = []

    func validate() throws {
        let reals: [(String, Double?)] = [
            ("--alpha", alpha.map(Double.init)), ("--lora-dropout", Double(loraDropout)),
            ("--adapter-scale", Double(adapterScale)), ("--density", density), ("--neat-scale", Double(neatScale)),
            ("--stage-fraction", Double(stageFraction)), ("--prune-fraction", Double(pruneFraction)),
        ]
        for case let (flag, value?) in reals where !value.isFinite {
            throw ValidationError("\(flag) must be a finite number, got \(value)")
        }
        guard ShiraMask(rawValue: mask) != nil else {
            throw ValidationError("unknown SHiRA mask '\(mask)'; choose one of: \(ShiraMask.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The options for `method`: the flags, then the `--option key=value` assignments (checked against the
    /// method's option list).
    func options(for method: String, seed: UInt64) throws -> MethodOptions {
        let descriptor: MethodDescriptor
        do { descriptor = try MethodRegistry.descriptor(named: method) } catch { throw ValidationError("\(error)") }
        do { return try descriptor.applying(assignments, to: options(seed: seed)) } catch { throw ValidationError("\(error)") }
    }

    func options(seed: UInt64) -> MethodOptions {
        var options = MethodOptions()
        options.density = density
        options.shiraMask = ShiraMask(rawValue: mask) ?? .random
        options.shiraTargets = TargetModules(parsing: shiraTargets)
        options.shiraMaskPart = maskPart
        options.neatPairs = neatPairs
        options.neatScale = neatScale
        options.identityStart = identityStart
        options.stageOneFraction = stageFraction
        options.scoringBatches = scoringBatches
        options.ttcChannels = channels
        options.ttcGlobal = globalChannels
        options.ttcZeroInit = zeroInitMaps
        options.ttcTrainNorms = !freezeNorms
        options.pruneFraction = pruneFraction
        options.pearScore = pearScore
        options.pearSharing = pearSharing
        options.pearGates = !noGates
        options.knowledgeCheckpoint = !noKnowledgeCheckpoint
        options.rank = rank
        options.alpha = alpha ?? Float(rank)
        options.dropout = loraDropout
        options.useRSLoRA = rsLoRA
        options.useDoRA = doRA
        options.targetModules = TargetModules(parsing: targetModules)
        options.adapterWidth = adapterWidth
        options.adapterScale = adapterScale
        options.prompts = prompts
        options.seed = seed
        return options
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
    @Option(help: "Backbone (default: dinov2-s14 for image tasks, minilm-l6 for text tasks).") var model: String?
    @Option(help: "Task name (see `peft tasks`).") var task = TrainingConfiguration().task
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
        try global.announce()
        var configuration = TrainingConfiguration()
        configuration.model = try model ?? TrainingSession.defaultModel(forTask: task)
        configuration.task = task
        configuration.method = method
        configuration.options = try methodFlags.options(for: method, seed: seed)
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
        configuration.seed = seed
        configuration.evaluateEvery = evalEvery
        configuration.maxStepsPerEpoch = maxSteps
        configuration.maxEvaluationExamples = maxEval
        configuration.onNonFinite = onNonfinite
        configuration.maxConsecutiveSkips = maxSkips
        let out = self.out ?? "runs/latest"
        printError("train: \(configuration.model) on \(task) with \(method), \(epochs) epochs, batch \(batchSize), lr \(configuration.resolvedLearningRate), \(resolution) px -> \(out)")
        let trainer = try TrainingSession.trainer(configuration, outputDirectory: URL(fileURLWithPath: out), progress: printError)
        // The default folder is a scratch "latest run": a new run there replaces the previous one.
        let result = try trainer.run(resume: resume, overwrite: overwrite || (self.out == nil && !resume))
        print(String(format: "%@ %@ %@: test accuracy %.2f%% | best val %.2f%% (epoch %d) | trainable %d of %d | %.3f s/step, %.1f img/s",
                     configuration.model, task, method, 100 * result.testAccuracy, 100 * result.bestValidationAccuracy,
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
