import ArgumentParser
import Foundation
import Methods
import Models
import Training

/// The task and resolution of the run an adapter directory belongs to (`runs/x/adapter` -> `runs/x/result.json`).
func runSettings(ofAdapter adapter: String) -> (task: String?, resolution: Int?) {
    let run = URL(fileURLWithPath: adapter).deletingLastPathComponent()
    guard let configuration = try? RunEvaluation.configuration(of: run) else { return (nil, nil) }
    return (configuration.task, configuration.resolution)
}

/// The image side to run an adapter at: `--resolution`, else the one the adapter records, else its run's
/// (`result.json` next to it). Never a silent default: an adapter that records none needs `--resolution`.
func imageResolution(given: Int?, adapter: AdapterConfiguration, runResolution: Int?, adapterPath: String) throws -> Int {
    guard let side = given ?? adapter.swiftpeft.resolution ?? runResolution else {
        throw ValidationError("\(adapterPath) does not record the image resolution it was trained at (and no result.json is next to it); give --resolution")
    }
    guard side > 0 && side <= VisionTransformerConfiguration.maximumResolution else {
        throw ValidationError("--resolution \(side) is outside 1...\(VisionTransformerConfiguration.maximumResolution)")
    }
    return side
}

/// Fuses adapters of one method and base model into one adapter (see `Fusion` for the exact semantics).
struct FuseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuse",
        abstract: "Fuse LoRA or SHiRA adapters (same method, same base model) into one adapter with weights.",
        discussion: """
        LoRA: the fused update is sum_i w_i B_i A_i (each with its own alpha/r), stored exactly as one LoRA of the
        summed rank (B = [w_1 B_1, w_2 B_2, ...], A = [A_1; A_2; ...]). SHiRA: the union of the masks, with value
        sum_i w_i v_i at each position (positions in several masks add). The classification head is not fused: the
        output stores the head of adapter --head (1-based, default 1); use another task's head with
        `peft eval-adapter FUSED --head-from ADAPTER` or `AdapterFiles.load(from:into:headFrom:)`.
        Example: peft fuse runs/a/adapter runs/b/adapter --weights 0.5,0.5 --out runs/ab
        """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Adapter directories (adapter_config.json + adapter_model.safetensors).") var adapters: [String]
    @Option(help: "Comma-separated weights, one per adapter (default: 1/n each).") var weights: String?
    @Option(help: "Output adapter directory.") var out: String?
    @Option(help: "Which adapter's classification head to store (1-based).") var head = 1
    @Flag(help: "Only print how many SHiRA mask positions the adapters share.") var overlapOnly = false

    func validate() throws {
        guard adapters.count >= 2 else { throw ValidationError("give at least two adapter directories") }
        guard overlapOnly || out != nil else { throw ValidationError("--out is required") }
        guard head >= 1 && head <= adapters.count else { throw ValidationError("--head must be in 1...\(adapters.count)") }
    }

    func parsedWeights() throws -> [Float] {
        guard let weights else { return [Float](repeating: 1 / Float(adapters.count), count: adapters.count) }
        let parts = weights.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap(Float.init)
        guard values.count == parts.count else { throw ValidationError("--weights '\(weights)': not a comma-separated list of numbers") }
        guard values.count == adapters.count else {
            throw ValidationError("--weights has \(values.count) values for \(adapters.count) adapters")
        }
        return values
    }

    func run() throws {
        try global.announce()
        if let out {
            try OutputPath.refuseOverwritingInputs(out, inputs: adapters.flatMap(adapterFiles), what: "--out")
        }
        let sources = try adapters.map { try Fusion.Adapter(directory: URL(fileURLWithPath: $0)) }
        if overlapOnly {
            let (counts, shared) = SHiRA.maskOverlap(sources)
            for i in sources.indices {
                for j in sources.indices where j > i {
                    print(String(format: "mask overlap %@ / %@: %d of %d / %d positions shared (%.3f%% of the first)",
                                 adapters[i], adapters[j], shared[i][j], counts[i], counts[j],
                                 100 * Double(shared[i][j]) / Double(max(counts[i], 1))))
                }
            }
            return
        }
        let weights = try parsedWeights()
        let result = try Fusion.fuse(sources, weights: weights, headFrom: head - 1)
        let destination = URL(fileURLWithPath: out!)
        try Fusion.write(result, to: destination)
        let details = result.configuration.swiftpeft
        var summary = "fused \(sources.count) \(details.method) adapters with weights \(weights.map { String(format: "%g", $0) }.joined(separator: ",")) into \(destination.path): \(result.layers) layers"
        summary += ", " + result.summary
        print(summary + "; head of \(adapters[head - 1]) (\(details.classes) classes)")
    }
}

/// Accuracy of an adapter directory (e.g. a fused one) on a task, optionally with another adapter's head.
struct EvalAdapterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-adapter",
        abstract: "Accuracy of an adapter directory on a task split, optionally with the head of another adapter.",
        discussion: "Example: peft eval-adapter runs/fused --head-from runs/digits/adapter --task digits-1k")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Adapter directory.") var adapter: String
    @Option(help: "Adapter directory whose classification head to use (e.g. the task's own adapter).") var headFrom: String?
    @Option(help: "Task (default: the task of the run the head's adapter belongs to).") var task: String?
    @Option(help: "Split: test, validation or train.") var split = "test"
    @Option(parsing: .unconditional, help: "Image side in pixels (default: the adapter's, else its run's).") var resolution: Int?
    @Option(parsing: .unconditional, help: "Evaluate on at most N examples.") var maxEval: Int?

    func validate() throws {
        if let maxEval, maxEval < 1 { throw ValidationError("--max-eval must be at least 1, got \(maxEval)") }
    }

    func run() throws {
        try global.announce()
        let settings = runSettings(ofAdapter: headFrom ?? adapter)
        guard let task = task ?? settings.task else {
            throw ValidationError("give --task (no run directory with result.json next to the adapter)")
        }
        let configuration = try AdapterFiles.configuration(in: URL(fileURLWithPath: adapter))
        var side: Int?
        if try TaskRegistry.kind(of: task) == .image {
            side = try imageResolution(given: resolution, adapter: configuration, runResolution: settings.resolution,
                                       adapterPath: adapter)
        }
        let accuracy = try AdapterEvaluation.accuracy(
            adapter: URL(fileURLWithPath: adapter), head: headFrom.map { URL(fileURLWithPath: $0) }, task: task,
            split: split, resolution: side, limit: maxEval, progress: printError)
        print(String(format: "%@ on %@ %@%@: accuracy %.2f%%", adapter, task, split,
                     headFrom.map { " (head from \($0))" } ?? "", 100 * accuracy))
    }
}

/// Classifies images with an adapter: top-k classes with probabilities.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Classify PNG or IDX images with an adapter and print the top-k classes with probabilities.",
        discussion: """
        PNG files of any colour type (grey, RGB, RGBA composited onto black, palette) are decoded by libpng and
        converted to RGB; an IDX file of unsigned bytes ([rows, columns], [N, rows, columns] or [N, rows, columns, 3])
        gives one prediction per image. Pixels are scaled to [0, 1] and resized and normalised as in training.
        Example: peft predict --model dinov2-s14 --adapter runs/x/adapter shirt.png digits.idx
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Base model (default: the adapter's; must match it).") var model: String?
    @Option(help: "Adapter directory.") var adapter: String
    @Argument(help: "PNG, JPEG or IDX image files, or folders (every .png, .jpg and .jpeg under them).") var images: [String]
    @Option(help: "Output: text (one line per image), csv (file, then label and probability per rank) or jsonl.")
    var format: PredictionFormat = .text
    @Option(parsing: .unconditional, help: "Number of classes to print per image.") var topK = 5
    @Option(help: "Task whose class names to print (default: the adapter's, or its run's).") var task: String?
    @Option(parsing: .unconditional, help: "Image side in pixels (default: the one recorded in the adapter, else its run's).")
    var resolution: Int?

    func validate() throws {
        guard topK >= 1 else { throw ValidationError("--top-k must be at least 1, got \(topK)") }
        guard !images.isEmpty else { throw ValidationError("give at least one PNG or IDX file") }
    }

    func run() throws {
        try global.announce()
        if let task { _ = try TaskRegistry.image(named: task) }
        let directory = URL(fileURLWithPath: adapter)
        let configuration = try AdapterFiles.configuration(in: directory)
        if let model, model != configuration.baseModelNameOrPath {
            throw ValidationError("the adapter in \(adapter) was trained on '\(configuration.baseModelNameOrPath)', not '\(model)'")
        }
        guard PretrainedModels.isVision(configuration.baseModelNameOrPath) else {
            throw ValidationError("predict classifies images; the adapter's base '\(configuration.baseModelNameOrPath)' is not a vision model")
        }
        let settings = runSettings(ofAdapter: adapter)
        let side = try imageResolution(given: resolution, adapter: configuration, runResolution: settings.resolution,
                                       adapterPath: adapter)
        let files = try imageFiles(images)
        let classifier = try AdapterEvaluation.model(from: directory, progress: printError)
        let classes = configuration.swiftpeft.classes
        var names = configuration.swiftpeft.classNames
        if names == nil, let task = task ?? settings.task,
           let taskNames = try? TaskRegistry.image(named: task).classNames, taskNames.count == classes {
            names = taskNames
        }
        guard let vision = (classifier as? ImageClassifier)?.vision else { throw ValidationError("not an image classifier") }
        try vision.configuration.checkResolution(side)
        let preprocessor = ImagePreprocessor(configuration: vision.configuration, resolution: side)
        if format == .csv {
            print((["file"] + (1...topK).flatMap { ["label_\($0)", "probability_\($0)"] }).joined(separator: ","))
        }
        // A few files at a time, so a folder of large photos never sits decoded in memory at once.
        var start = 0
        while start < files.count {
            let chunk = files[start..<min(start + 32, files.count)]
            let inputs = try chunk.flatMap { file in
                // A folder's files are PNG or JPEG (one image each), named by their path.
                try InputImage.load(file.url).map { (input: $0, name: file.showsPath ? file.url.path : $0.name) }
            }
            let probabilities = Prediction.probabilities(classifier, images: inputs.map(\.input), preprocessor: preprocessor)
            for (input, row) in zip(inputs, probabilities) {
                let top = Prediction.top(topK, of: row).map { (names?[$0.classIndex] ?? "class \($0.classIndex)", $0.probability) }
                switch format {
                case .text:
                    print("\(input.name): " + top.map { String(format: "%@ %.4f", $0.0, $0.1) }.joined(separator: " | "))
                case .csv:
                    print(([csvField(input.name)] + top.flatMap { [csvField($0.0), String(format: "%.6f", $0.1)] }).joined(separator: ","))
                case .jsonl:
                    let object: [String: Any] = ["file": input.name, "top": top.map { ["label": $0.0, "probability": Double($0.1)] }]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                }
            }
            start += 32
        }
    }

    /// The files to classify: each file argument, and every image file under each folder argument (sorted).
    func imageFiles(_ arguments: [String]) throws -> [(url: URL, showsPath: Bool)] {
        var files: [(URL, Bool)] = []
        for argument in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                throw ValidationError("\(argument): no such file or folder")
            }
            guard isDirectory.boolValue else { files.append((URL(fileURLWithPath: argument), false)); continue }
            let root = URL(fileURLWithPath: argument)
            let found = (FileManager.default.enumerator(atPath: argument)?.compactMap { $0 as? String } ?? [])
                .filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) && !$0.split(separator: "/").contains { $0.hasPrefix(".") } }
                .sorted()
            guard !found.isEmpty else { throw ValidationError("\(argument): no .png, .jpg or .jpeg files in this folder") }
            files += found.map { (root.appendingPathComponent($0), true) }
            guard files.count <= 1_000_000 else { throw ValidationError("more than 1,000,000 images to classify") }
        }
        return files
    }
}

/// How `peft predict` prints its answers.
enum PredictionFormat: String, ExpressibleByArgument, CaseIterable {
    case text, csv, jsonl
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
func csvField(_ text: String) -> String {
    text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
}
