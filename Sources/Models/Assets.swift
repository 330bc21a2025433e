import Foundation

/// Where the downloaded weights and data live (`scripts/setup.sh` fills it).
///
/// Resolution order: the `PEFT_ASSETS` environment variable; an `assets` folder in the current directory or
/// one of its parents; an `assets` folder above the running executable (e.g. `.build/release/peft`).
public enum Assets {
    /// The assets folder.
    public static var root: URL {
        if let value = ProcessInfo.processInfo.environment["PEFT_ASSETS"], !value.isEmpty {
            return URL(fileURLWithPath: value)
        }
        let manager = FileManager.default
        var candidates: [URL] = []
        var directory = URL(fileURLWithPath: manager.currentDirectoryPath)
        for _ in 0..<6 { candidates.append(directory); directory.deleteLastPathComponent() }
        var executable = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        for _ in 0..<6 { executable.deleteLastPathComponent(); candidates.append(executable) }
        for candidate in candidates {
            let assets = candidate.appendingPathComponent("assets")
            var isDirectory: ObjCBool = false
            if manager.fileExists(atPath: assets.path, isDirectory: &isDirectory), isDirectory.boolValue {
                return assets
            }
        }
        return URL(fileURLWithPath: manager.currentDirectoryPath).appendingPathComponent("assets")
    }

    /// A file under the assets folder, or an error saying how to get it.
    public static func file(_ relativePath: String) throws -> URL {
        let url = root.appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw AssetError(description: "missing asset \(url.path): run scripts/setup.sh (or set PEFT_ASSETS to the folder it filled)")
        }
        return url
    }
}

/// A required asset is missing.
public struct AssetError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
