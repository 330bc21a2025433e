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
