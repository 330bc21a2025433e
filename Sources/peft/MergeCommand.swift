import ArgumentParser
import Checkpoints
import Foundation
import Methods
import Models
import Training

/// Folds a run's adapter into the base weights and writes a plain model file.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge an adapter into its base model and write a plain safetensors model (backbone + classifier).",
        discussion: "The output uses Hugging Face names (dinov2.*, classifier.*) and loads without any adapter code.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "An adapter directory (adapter_config.json + adapter_model.safetensors), e.g. runs/x/adapter.")
    var adapter: String
    @Option(help: "Output safetensors file.") var out: String

    func run() throws {
        try global.announce()
        let directory = URL(fileURLWithPath: adapter)
        let configuration = try AdapterFiles.configuration(in: directory)
        let details = configuration.swiftpeft
        try OutputPath.refuseOverwritingInputs(
            out, inputs: adapterFiles(adapter) + PretrainedModels.files(of: configuration.baseModelNameOrPath), what: "--out")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ValidationError("--out \(out) is a directory; give the path of the safetensors file to write")
        }
        let model = try AdapterEvaluation.model(from: directory, progress: printError)
        try Merging.merge(model)
        let url = URL(fileURLWithPath: out)
        try SafeTensors.write(model.stateDict(), metadata: ["format": "pt", "merged_from": adapter,
                                                          "base_model": configuration.baseModelNameOrPath], to: url)
        print("merged \(details.method) adapter into \(configuration.baseModelNameOrPath): wrote \(url.path) (\(model.parameterCount) parameters)")
    }
}
