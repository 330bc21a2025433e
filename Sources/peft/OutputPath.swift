import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks on paths a command is about to write.
enum OutputPath {
    /// Throws when `output` names the same file or directory as one of `inputs` (by resolved path, or by device
    /// and inode when both exist, which also catches hard links), so that no command writes over what it reads,
    /// e.g. `peft merge ... --out` the base model's own file.
    static func refuseOverwritingInputs(_ output: String, inputs: [URL], what: String) throws {
        let target = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath()
        var targetInfo = stat()
        let targetExists = stat(target.path, &targetInfo) == 0
        for input in inputs {
            let source = input.standardizedFileURL.resolvingSymlinksInPath()
            var sourceInfo = stat()
            let sameInode = targetExists && stat(source.path, &sourceInfo) == 0
                && sourceInfo.st_dev == targetInfo.st_dev && sourceInfo.st_ino == targetInfo.st_ino
            if source.path == target.path || sameInode {
                throw ValidationError("\(what) \(output) is \(input.path), which this command reads; choose another output path")
            }
        }
    }
}

/// The two files of an adapter directory, and the directory itself.
func adapterFiles(_ directory: String) -> [URL] {
    let url = URL(fileURLWithPath: directory)
    return [url, url.appendingPathComponent("adapter_model.safetensors"), url.appendingPathComponent("adapter_config.json")]
}
