import Checkpoints
import Engine
import Foundation

/// Rewrites a safetensors file after `edit` has changed its float tensors, integer tensors or metadata
/// (hostile inputs for the tests: a NaN weight, a lying training state, a malformed SHiRA mask).
func rewriteSafeTensors(_ url: URL, edit: (inout [String: Tensor], inout [String: Int32Tensor], inout [String: String]) throws -> Void) throws {
    let file = try SafeTensorsFile(path: url.path)
    var floats: [String: Tensor] = [:], integers: [String: Int32Tensor] = [:]
    var metadata = file.metadata
    for name in file.names {
        guard let info = file.info(name) else { continue }
        if info.dtype == .i32 {
            integers[name] = Int32Tensor(shape: info.shape, values: try file.int32Values(name))
        } else {
            floats[name] = try file.tensor(name, allowNonFinite: true).copy()
        }
    }
    try edit(&floats, &integers, &metadata)
    try SafeTensors.write(floats, int32: integers, metadata: metadata, to: url)
}

/// Edits a JSON file in place.
func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    edit(&object)
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted]).write(to: url)
}

/// Changes one key of the JSON training state stored in a checkpoint's metadata.
func editTrainingState(_ checkpoint: URL, _ edit: @escaping (inout [String: Any]) -> Void) throws {
    try rewriteSafeTensors(checkpoint) { _, _, metadata in
        var state = try JSONSerialization.jsonObject(with: Data(metadata["peft_training_state"]!.utf8)) as! [String: Any]
        edit(&state)
        metadata["peft_training_state"] = String(decoding: try JSONSerialization.data(withJSONObject: state), as: UTF8.self)
    }
}
