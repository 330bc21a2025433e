import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Recycles large float buffers so that a training step reuses the memory of the previous one instead of
/// asking the kernel for fresh (page-faulting, zero-filled) pages every time.
///
/// Buffers of at least `minimumPooledCount` floats are rounded up to a size class (a multiple of 16 KiB), kept on
/// free lists when released, and handed out again for requests of the same class. The pool holds at most
/// `capacityBytes`; beyond that, released buffers are freed.
final class BufferPool: @unchecked Sendable {
    static let shared = BufferPool()

    static let minimumPooledCount = 16_384
    static let classGranularity = 4_096
    var capacityBytes = 6 << 30

    private var freeLists: [Int: [UnsafeMutableRawPointer]] = [:]
    private var pooledBytes = 0
    private let lock = NSLock()
    /// Bytes of pool-sized buffers (at least `minimumPooledCount` floats) currently held by tensors, and the
    /// largest value since `resetPeak()`. Smaller buffers are not counted (they are a tiny share of the memory).
    private(set) var liveBytes = 0
    private(set) var peakLiveBytes = 0

    /// Starts a new peak measurement at the current live size.
    func resetPeak() { lock.lock(); peakLiveBytes = liveBytes; lock.unlock() }

    /// The number of floats actually allocated for a request of `count`.
    @inline(__always)
    static func sizeClass(_ count: Int) -> Int {
        count < minimumPooledCount ? max(count, 1) : (count + classGranularity - 1) / classGranularity * classGranularity
    }

    func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let size = Self.sizeClass(count)
        if count >= Self.minimumPooledCount {
            lock.lock()
            liveBytes += size * 4
            peakLiveBytes = max(peakLiveBytes, liveBytes)
            if var list = freeLists[size], let pointer = list.popLast() {
                freeLists[size] = list
                pooledBytes -= size * 4
                lock.unlock()
                return pointer
            }
            lock.unlock()
        }
        return Self.systemAllocate(bytes: size * 4)
    }

    /// 64-byte aligned memory from the C library. When there is none (an address-space limit, or memory
    /// exhausted), the program stops with a message saying how much was asked for and why, and exit code 71,
    /// instead of crashing inside the allocator; sizes derived from user input are checked before this point.
    static func systemAllocate(bytes: Int) -> UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        if posix_memalign(&pointer, 64, bytes) == 0, let pointer { return pointer }
        let message = "error: out of memory: could not allocate \(bytes) bytes for a tensor (\(liveTensorText)). " +
            "The machine's memory or the address-space limit (ulimit -v) is too small for this model and batch; " +
            "lower --batch-size or --resolution, or raise the limit.\n"
        _ = message.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        exit(71)
    }

    private static var liveTensorText: String { "\(shared.liveBytes >> 20) MB held by tensors" }

    /// Bytes of released buffers kept on the free lists.
    var pooledByteCount: Int { lock.lock(); defer { lock.unlock() }; return pooledBytes }

    /// Frees every pooled buffer and asks the C library to return free heap pages to the system.
    func drain() {
        lock.lock()
        let lists = freeLists
        freeLists = [:]
        pooledBytes = 0
        lock.unlock()
        for pointer in lists.values.joined() { free(pointer) }
        SystemMemory.trim()
    }

    func release(_ pointer: UnsafeMutableRawPointer, count: Int) {
        let size = Self.sizeClass(count)
        if count >= Self.minimumPooledCount {
            lock.lock()
            liveBytes -= size * 4
            if pooledBytes + size * 4 <= capacityBytes {
                freeLists[size, default: []].append(pointer)
                pooledBytes += size * 4
                lock.unlock()
                return
            }
            lock.unlock()
        }
        free(pointer)
    }
}

/// Tensor memory in use, as counted by the buffer pool (buffers of 64 KiB and more).
public enum TensorMemory {
    /// Bytes currently held by tensors.
    public static var liveBytes: Int { BufferPool.shared.liveBytes }
    /// Largest `liveBytes` since the last `resetPeak()`.
    public static var peakLiveBytes: Int { BufferPool.shared.peakLiveBytes }
    /// Starts a new peak measurement.
    public static func resetPeak() { BufferPool.shared.resetPeak() }
    /// Bytes of released tensor buffers the pool keeps for reuse.
    public static var pooledBytes: Int { BufferPool.shared.pooledByteCount }
    /// Frees the pool's buffers and returns free heap pages to the system (after a long-lived process drops
    /// models or adapters; the next allocations are fresh pages).
    public static func releasePooled() { BufferPool.shared.drain() }
}

/// The C library's heap.
enum SystemMemory {
    /// Returns free memory at the top and in the middle of the heap to the system (glibc's `malloc_trim`, looked
    /// up at run time because the Glibc module does not export <malloc.h>; nothing elsewhere).
    static func trim() {
        #if os(Linux)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        }
        #endif
    }
}
