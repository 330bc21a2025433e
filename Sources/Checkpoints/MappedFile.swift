import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file memory-mapped into the address space; unmapped when the last reference goes away.
///
/// The file is opened read-only. With `copyOnWrite` the pages are mapped private and writable: writing to them
/// (e.g. an optimiser updating a zero-copy weight in place) copies the page in memory and never changes the file.
/// Like any mapping, it must not be truncated by another process while in use (that would raise SIGBUS);
/// replacing it with an atomic rename, as `SafeTensors.write` does, is safe.
final class MappedFile: @unchecked Sendable {
    /// The path, used in error messages.
    let path: String
    /// Start of the mapping (nil for an empty file).
    let base: UnsafeMutableRawPointer?
    /// Size of the file in bytes.
    let size: Int

    /// Maps the file at `path`; throws `CheckpointError(.io)` naming the file if it cannot be opened or mapped.
    init(path: String, copyOnWrite: Bool) throws {
        self.path = path
        // O_NONBLOCK: a FIFO with no writer would otherwise block here forever; it is refused below.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw CheckpointError(.io, path: path, "cannot open for reading: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw CheckpointError(.io, path: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw CheckpointError(.io, path: path, (info.st_mode & S_IFMT) == S_IFDIR ? "is a directory, not a file"
                : "not a regular file (a FIFO, socket or device)")
        }
        size = Int(info.st_size)
        if size == 0 {
            base = nil
            return
        }
        let protection = copyOnWrite ? (PROT_READ | PROT_WRITE) : PROT_READ
        guard let mapped = mmap(nil, size, protection, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw CheckpointError(.io, path: path, "cannot memory-map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        base = mapped
    }

    deinit {
        if let base { munmap(base, size) }
    }

    /// The mapped bytes (empty for an empty file).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}
