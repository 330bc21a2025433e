import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file atomically: into a temporary file in the destination's directory, fsync, rename over the
/// destination, fsync the directory. On any failure the temporary file is removed and the destination is untouched.
final class AtomicFileWriter {
    /// The final destination, used in error messages.
    let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Creates the temporary file, lets `body` fill it through `write(_:)`, then publishes it at `url`.
    static func write(to url: URL, _ body: (AtomicFileWriter) throws -> Void) throws {
        let path = url.path
        func failure(_ what: String) -> CheckpointError {
            CheckpointError(.io, path: path, "\(what): \(String(cString: strerror(errno)))")
        }
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw CheckpointError(.io, path: path,
                "cannot create temporary file \(temporary): \(String(cString: strerror(errno)))")
        }
        var published = false
        defer { if !published { unlink(temporary) } }
        do {
            try body(AtomicFileWriter(path: path, fd: fd))
            guard fsync(fd) == 0 else { throw failure("cannot flush to disk (fsync)") }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw failure("cannot close the temporary file") }
        guard rename(temporary, path) == 0 else {
            throw CheckpointError(.io, path: path,
                "cannot rename \(temporary) over the destination: \(String(cString: strerror(errno)))")
        }
        published = true
        // Make the rename itself durable; failure here does not undo a completed write, so it is not reported.
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Appends `bytes`, retrying short writes and interruptions.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = systemWrite(fd, next, min(remaining, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                throw CheckpointError(.io, path: path, "write failed: \(String(cString: strerror(errno)))")
            }
            remaining -= written
            next += written
        }
    }
}

/// The C `write`, reachable from inside a method of the same name.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}

/// Writes `data` to `url` atomically (temporary file in the same folder, flushed to disk, then renamed), creating
/// the folder if needed; a reader sees either the old file or the whole new one, never a partial write.
public func writeFileAtomically(_ data: Data, to url: URL) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try AtomicFileWriter.write(to: url) { writer in
        try data.withUnsafeBytes { try writer.write($0) }
    }
}

/// Replaces the directory `url` as a whole: `body` fills a staging directory next to it
/// (`.<name>.tmp-<pid>-<random>`), which then takes the destination's place in one atomic exchange
/// (`renameat2(RENAME_EXCHANGE)` on Linux; elsewhere two renames), so a reader or a killed run sees either the
/// old set of files or the whole new set, never a mix. On failure the staging directory is removed and the
/// destination is untouched.
public func writeDirectoryAtomically(_ url: URL, _ body: (URL) throws -> Void) throws {
    let fileManager = FileManager.default
    let parent = url.deletingLastPathComponent()
    try fileManager.createDirectory(at: parent, withIntermediateDirectories: true)
    let suffix = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let staging = parent.appendingPathComponent(".\(url.lastPathComponent).tmp-\(suffix)")
    try fileManager.createDirectory(at: staging, withIntermediateDirectories: false)
    var published = false
    defer { if !published { try? fileManager.removeItem(at: staging) } }
    try body(staging)
    var isDirectory: ObjCBool = false
    if fileManager.fileExists(atPath: url.path, isDirectory: &isDirectory) {
        guard isDirectory.boolValue else {
            throw CheckpointError(.io, path: url.path, "exists and is not a directory; refusing to replace it")
        }
        if exchangePaths(staging.path, url.path) {
            published = true
            try? fileManager.removeItem(at: staging)  // now holds the old files
        } else {
            let old = parent.appendingPathComponent(".\(url.lastPathComponent).tmp-old-\(suffix)")
            guard rename(url.path, old.path) == 0 else {
                throw CheckpointError(.io, path: url.path, "cannot move the old directory aside: \(String(cString: strerror(errno)))")
            }
            guard rename(staging.path, url.path) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = rename(old.path, url.path)
                throw CheckpointError(.io, path: url.path, "cannot rename \(staging.path) into place: \(reason)")
            }
            published = true
            try? fileManager.removeItem(at: old)
        }
    } else {
        guard rename(staging.path, url.path) == 0 else {
            throw CheckpointError(.io, path: url.path, "cannot rename \(staging.path) into place: \(String(cString: strerror(errno)))")
        }
        published = true
    }
    let directoryFD = open(parent.path, O_RDONLY | O_CLOEXEC)
    if directoryFD >= 0 {
        _ = fsync(directoryFD)
        close(directoryFD)
    }
}

/// Swaps two paths atomically where the system can (Linux `renameat2` with RENAME_EXCHANGE, looked up at run
/// time so older C libraries still link); false when it cannot, and nothing has changed then.
private func exchangePaths(_ a: String, _ b: String) -> Bool {
    #if os(Linux)
    typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    guard let symbol = dlsym(nil, "renameat2") else { return false }  // nil is RTLD_DEFAULT on glibc
    let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
    let atCurrentDirectory: Int32 = -100, exchange: UInt32 = 2
    return renameat2(atCurrentDirectory, a, atCurrentDirectory, b, exchange) == 0
    #else
    return false
    #endif
}
