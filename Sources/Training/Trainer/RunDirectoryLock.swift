import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An advisory lock on a run directory (`flock` on `<dir>/.lock`), held while a process trains into it, so two
/// processes never write one run. The holder's pid is written into the file for the refusal message. The lock
/// goes away with the process, however it ends, so a killed run never leaves the directory locked.
final class RunDirectoryLock {
    let url: URL
    private var fd: Int32

    /// Creates the directory if needed and takes the lock, or throws naming the process that holds it.
    init(directory: URL) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw TrainingError("\(directory.path): exists and is not a directory; give --out a directory")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("\(directory.path): cannot create the output directory (\(error.localizedDescription))")
        }
        url = directory.appendingPathComponent(".lock")
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TrainingError("\(url.path): cannot create the run lock (\(String(cString: strerror(errno))))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            fd = -1
            let holder = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "unknown"
            if code == EWOULDBLOCK {
                throw TrainingError("\(directory.path) is in use by another peft process (pid \(holder)); wait for it to finish or use another --out")
            }
            throw TrainingError("\(url.path): cannot lock (\(String(cString: strerror(code))))")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Releases the lock (also done when the object goes away).
    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
