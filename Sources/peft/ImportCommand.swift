import ArgumentParser
import Checkpoints
import Foundation
import Models

/// Converts the DINOv2 ONNX file into a safetensors file with Hugging Face Dinov2Model names.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Write the DINOv2-S/14 ONNX weights as safetensors with Hugging Face Dinov2Model names.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "The ONNX file (default: assets/dinov2/vit_s_focus.onnx).") var onnx: String?
    @Option(help: "Output safetensors file (default: assets/dinov2/dinov2-s14.safetensors).") var out: String?

    func run() throws {
        try global.announce()
        let source = try onnx.map { URL(fileURLWithPath: $0) } ?? Assets.file("dinov2/vit_s_focus.onnx")
        let destination = out.map { URL(fileURLWithPath: $0) }
            ?? Assets.root.appendingPathComponent("dinov2/dinov2-s14.safetensors")
        try OutputPath.refuseOverwritingInputs(destination.path, inputs: [source], what: "--out")
        let started = Date()
        try importDINOv2(onnx: source, to: destination)
        let file = try SafeTensorsFile(path: destination.path)
        let count = try file.names.reduce(0) { $0 + (try file.tensor($1)).count }
        print("wrote \(destination.path): \(file.names.count) tensors, \(count) parameters in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
