// Coverage-guided fuzz harness for the file readers (libFuzzer, built by scripts/fuzz.sh with swiftc; not part of
// the package's products). The reader is chosen with PEFT_FUZZ_READER:
//   safetensors | onnx | idx | json | adapter | gguf
// Every input must either load or throw; a crash, trap, hang or huge allocation is a finding.
// With PEFT_FUZZ_WRITE_SEEDS=<dir>, LLVMFuzzerInitialize writes small seed files made by the real writers and exits.
import Foundation
@testable import Checkpoints
import Engine
import Layers
import Models
@testable import Methods
@testable import Training

/// Which reader this process fuzzes (read once).
nonisolated(unsafe) var fuzzReader = ""
/// A private scratch directory for the files the readers need (they take paths).
nonisolated(unsafe) var scratch = URL(fileURLWithPath: "/tmp")

let tinyVision = VisionTransformerConfiguration(imageSize: 8, patchSize: 4, width: 8, depth: 1, heads: 2,
                                                mlpDimension: 16, layerNormEps: 1e-6, layerScale: true)
func tinyModel() -> ImageClassifier { ImageClassifier(vision: VisionTransformer(tinyVision, seed: 1), classes: 2, seed: 1) }
let tinyArchitecture = DINOv2Architecture(depth: 1, hiddenSize: 4, mlpSize: 8, patchSize: 2, gridSize: 2)
let adapterSeparator = Array("\n#### adapter_model.safetensors ####\n".utf8)

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    let environment = ProcessInfo.processInfo.environment
    fuzzReader = environment["PEFT_FUZZ_READER"] ?? "safetensors"
    // Memory-backed when possible: the readers take paths, and a disk file per input would dominate the run time.
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    scratch = URL(fileURLWithPath: base).appendingPathComponent("peft-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(at: scratch) }
    if let seeds = environment["PEFT_FUZZ_WRITE_SEEDS"] {
        do { try writeSeeds(to: URL(fileURLWithPath: seeds)) } catch { print("seed writing failed: \(error)"); exit(1) }
        exit(0)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    runOne(bytes)
    return 0
}

func write(_ bytes: [UInt8], _ name: String) -> URL {
    let url = scratch.appendingPathComponent(name)
    _ = FileManager.default.createFile(atPath: url.path, contents: Data(bytes))
    return url
}

func runOne(_ bytes: [UInt8]) {
    switch fuzzReader {
    case "safetensors": fuzzSafeTensors(write(bytes, "input.safetensors"))
    case "onnx": fuzzONNX(write(bytes, "input.onnx"))
    case "idx": fuzzIDX(bytes)
    case "json": fuzzJSON(bytes)
    case "adapter": fuzzAdapter(bytes)
    case "gguf": fuzzGGUF(write(bytes, "input.gguf"))
    default: fatalError("unknown PEFT_FUZZ_READER '\(fuzzReader)'")
    }
}

func fuzzSafeTensors(_ url: URL) {
    guard let file = try? SafeTensorsFile(url: url) else { return }
    for name in file.names {
        guard let info = file.info(name) else { continue }
        if info.dtype.convertsToFloat32 { _ = try? file.tensor(name) }
        if info.dtype.isInteger { _ = try? file.int32Values(name) }
    }
    _ = try? file.loadAll()
}

func fuzzGGUF(_ url: URL) {
    guard let file = try? GGUFFile(path: url.path) else { return }
    for name in file.names {
        _ = try? file.tensor(name, allowNonFinite: true)
        if let matrix = try? file.quantizedMatrix(name) { _ = matrix.dequantized() }
    }
}

func fuzzONNX(_ url: URL) {
    guard let model = try? ONNXModel(url: url) else { return }
    for initializer in model.initializers { _ = try? model.floatTensor(initializer) }
    _ = try? DINOv2ONNXImporter(architecture: tinyArchitecture).stateDict(from: model)
}

func fuzzIDX(_ bytes: [UInt8]) {
    var content = bytes
    if Gzip.hasGzipMagic(bytes) {
        guard let inflated = try? Gzip.decompress(bytes, name: "input", outputLimit: 1 << 24) else { return }
        content = inflated
    }
    _ = try? IDXFile.parse(content, name: "input")
    _ = try? IDXFile.parse(content, name: "input", expectedRank: 3)
}

func fuzzJSON(_ bytes: [UInt8]) {
    _ = try? bytes.withUnsafeBytes { try JSONParser.parse($0) }
    let data = Data(bytes)
    let decoder = JSONDecoder()
    _ = try? decoder.decode(TrainingConfiguration.self, from: data)
    if let object = try? decoder.decode(ConfigObject.self, from: data) {
        for descriptor in MethodRegistry.all { _ = try? descriptor.validated(object) }
    }
    _ = try? decoder.decode(AdapterConfiguration.self, from: data)
    _ = try? decoder.decode(CheckpointState.self, from: data)
}

func fuzzAdapter(_ bytes: [UInt8]) {
    let directory = scratch.appendingPathComponent("adapter")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    var config = bytes, weights: [UInt8] = []
    if let cut = firstIndex(of: adapterSeparator, in: bytes) {
        config = Array(bytes[..<cut])
        weights = Array(bytes[(cut + adapterSeparator.count)...])
    }
    _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("adapter_config.json").path, contents: Data(config))
    _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("adapter_model.safetensors").path, contents: Data(weights))
    let model = tinyModel()
    _ = try? AdapterFiles.load(from: directory, into: model)
}

func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard haystack.count >= needle.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if Array(haystack[start..<(start + needle.count)]) == needle { return start }
    }
    return nil
}

// MARK: Seeds

struct Proto {
    var bytes: [UInt8] = []
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func int(_ field: Int, _ value: Int) { varint(UInt64(field << 3)); varint(UInt64(bitPattern: Int64(value))) }
    mutating func data(_ field: Int, _ payload: [UInt8]) { varint(UInt64(field << 3 | 2)); varint(UInt64(payload.count)); bytes += payload }
    mutating func string(_ field: Int, _ text: String) { data(field, Array(text.utf8)) }
}

func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } } }

func onnxTensor(_ name: String, _ dims: [Int], raw: Bool = true) -> [UInt8] {
    var t = Proto()
    for d in dims { t.int(1, d) }
    t.int(2, 1)
    t.string(8, name)
    let values = (0..<dims.reduce(1, *)).map { Float($0) * 0.25 }
    t.data(raw ? 9 : 4, floatBytes(values))
    return t.bytes
}

func onnxModel(_ tensors: [[UInt8]], nodes: [[UInt8]] = []) -> [UInt8] {
    var graph = Proto()
    for n in nodes { graph.data(1, n) }
    for t in tensors { graph.data(5, t) }
    var opset = Proto(); opset.int(2, 14)
    var model = Proto()
    model.int(1, 7)
    model.string(2, "seed")
    model.data(7, graph.bytes)
    model.data(8, opset.bytes)
    return model.bytes
}

func writeSeeds(to root: URL) throws {
    func put(_ reader: String, _ name: String, _ bytes: [UInt8]) throws {
        let directory = root.appendingPathComponent(reader)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(bytes).write(to: directory.appendingPathComponent(name))
    }
    func read(_ url: URL) throws -> [UInt8] { Array(try Data(contentsOf: url)) }

    // safetensors: written by our writer (F32 + I32 + metadata), plus hand-made F16/BF16/I64/BOOL and broken ones.
    let st = scratch.appendingPathComponent("seed.safetensors")
    try SafeTensors.write(["a": Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]), "b": Tensor(shape: [], values: [7])],
                          int32: ["idx": Int32Tensor(shape: [2, 2], values: [0, 1, 1, 0])], metadata: ["format": "pt"], to: st)
    let valid = try read(st)
    try put("safetensors", "valid-f32-i32", valid)
    func handMade(_ header: String, _ data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + data
    }
    try put("safetensors", "valid-mixed-dtypes", handMade(
        #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"g":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"#
            + #""i":{"dtype":"I64","shape":[1],"data_offsets":[6,14]},"z":{"dtype":"BOOL","shape":[2],"data_offsets":[14,16]},"#
            + #""__metadata__":{"k":"v"}}"#, [0, 60, 0, 188, 128, 63, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0]))
    try put("safetensors", "huge-length", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F] + Array("{}".utf8))
    try put("safetensors", "huge-shape", handMade(#"{"x":{"dtype":"F32","shape":[1152921504606846976,16],"data_offsets":[0,4]}}"#, [0, 0, 0, 0]))
    try put("safetensors", "truncated", Array(valid.prefix(valid.count - 3)))

    // ONNX: a tiny DINOv2-shaped export, raw and typed data, plus a truncated copy.
    let small = onnxModel([onnxTensor("backbone.embeddings.cls_token", [1, 1, 4]),
                           onnxTensor("onnx::MatMul_1", [4, 4], raw: false)],
                          nodes: [{ var n = Proto(); n.string(1, "x"); n.string(1, "onnx::MatMul_1"); n.string(2, "y")
                                    n.string(3, "/backbone/encoder/layer.0/attention/attention/query/MatMul"); n.string(4, "MatMul"); return n.bytes }()])
    try put("onnx", "tiny-dinov2", small)
    try put("onnx", "truncated", Array(small.prefix(small.count / 2)))
    try put("onnx", "huge-dims", onnxModel([{ var t = Proto(); t.int(1, 1 << 40); t.int(1, 1 << 20); t.int(2, 1); t.string(8, "w"); t.data(9, [0, 0, 128, 63]); return t.bytes }()]))

    // IDX: raw images and labels, and a gzipped copy (made with a stored block, then with the system gzip if present).
    let images: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2] + (0..<8).map { UInt8($0 * 30) }
    let labels: [UInt8] = [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]
    try put("idx", "images-raw", images)
    try put("idx", "labels-raw", labels)
    try put("idx", "absurd-dims", [0, 0, 8, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
    let gz = scratch.appendingPathComponent("seed.idx")
    try Data(images + images + images).write(to: gz)
    let gzip = Process()
    gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
    gzip.arguments = ["-9", "-f", "-n", gz.path]
    try gzip.run(); gzip.waitUntilExit()
    try put("idx", "images-gzip", try read(URL(fileURLWithPath: gz.path + ".gz")))

    // JSON configs: a training configuration, method options, a checkpoint state, and an invalid document.
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var configuration = TrainingConfiguration()
    configuration.use(LoRA(config: .init { $0.targetModules = .pattern(".*query") }))
    try put("json", "training-configuration", Array(try encoder.encode(configuration)))
    try put("json", "method-config", Array(try encoder.encode(TTC.Config { $0.channels = 4 })))
    try put("json", "checkpoint-state", Array(try encoder.encode(CheckpointState(configuration: configuration, completedEpochs: 1,
        optimizerStep: 3, bestEpoch: 0, bestValidationAccuracy: 0.5, history: []))))
    try put("json", "escapes-and-numbers", Array(#"{"a":[1,-0.5e+3,true,false,null,"\u00e9\ud83d\ude00\n"],"b":{}}"#.utf8))

    // Adapters: LoRA and SHiRA adapters of the tiny model, as config + separator + weights.
    let methods: [any PEFTMethod] = [LoRA(config: .init { $0.r = 2 }), SHiRA(config: .init { $0.density = 0.1 }), BitFit()]
    for resolved in methods {
        let method = resolved.name
        let model = tinyModel()
        try resolved.apply(to: model)
        let directory = scratch.appendingPathComponent("seed-adapter-\(method)")
        try AdapterFiles.save(model, method: resolved, baseModel: "tiny", to: directory)
        let config = try read(directory.appendingPathComponent("adapter_config.json"))
        let weights = try read(directory.appendingPathComponent("adapter_model.safetensors"))
        try put("adapter", method, config + adapterSeparator + weights)
    }
}
