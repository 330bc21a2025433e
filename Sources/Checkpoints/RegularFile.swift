import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading small input files (configs, results, data files) with the checks every reader needs: the path must
/// name a regular file (a FIFO, a device such as `/dev/zero` or a directory is refused instead of hanging or
/// reading forever), it must be readable, and it must not be larger than `limit` bytes.
public enum RegularFile {
    /// Why a file could not be read; `description` names the file.
    public struct Failure: Error, CustomStringConvertible, Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case missing, notRegular, unreadable, tooLarge, invalid }
        public let kind: Kind
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Default size limit for configuration and result files (16 MiB).
    public static let configurationLimit = 16 << 20

    /// Whether `path` exists (any kind of file, without following a dangling symlink's target).
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// The bytes of the regular file at `url`, at most `limit` of them.
    public static func read(_ url: URL, limit: Int = configurationLimit) throws -> Data {
        let path = url.path
        func fail(_ kind: Failure.Kind, _ reason: String) -> Failure { Failure(kind: kind, path: path, reason: reason) }
        // O_NONBLOCK: opening a FIFO with no writer would otherwise block forever.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw fail(.missing, "missing") }
            throw fail(.unreadable, "cannot be opened for reading (\(String(cString: strerror(code))))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw fail(.unreadable, "cannot stat (\(String(cString: strerror(errno))))")
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw fail(.notRegular, type == S_IFDIR ? "is a directory, not a file" : "is not a regular file (a FIFO, socket or device)")
        }
        let size = Int(info.st_size)
        guard size <= limit else {
            throw fail(.tooLarge, "is \(size) bytes, more than the limit of \(limit) bytes for this kind of file")
        }
        var data = Data(count: size)
        var done = 0
        try data.withUnsafeMutableBytes { buffer in
            while done < size {
                let got = Glibc_read(fd, buffer.baseAddress! + done, size - done)
                if got < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    throw fail(.unreadable, "read failed (\(String(cString: strerror(errno))))")
                }
                if got == 0 { break }
                done += got
            }
        }
        return done == size ? data : data.prefix(done)
    }
}

/// The C `read`, reachable where a method of the same name would shadow it.
private func Glibc_read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
