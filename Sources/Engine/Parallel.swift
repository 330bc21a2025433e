import BLASBinding
import Foundation
import VectorKernels

/// Splits work over the machine's cores.
public enum Parallel {
    /// Number of worker threads our own kernels use: `PEFT_THREADS` when set, else the active processors shared
    /// among the processes an MPI launcher started on this machine (`OMPI_COMM_WORLD_LOCAL_SIZE`, so that
    /// `mpirun -n 2` on two cores runs one thread per rank), else all of them.
    public static let workerCount: Int = threadCount(environment: ProcessInfo.processInfo.environment,
                                                     processors: ProcessInfo.processInfo.activeProcessorCount)

    /// The worker count for an environment and processor count (see `workerCount`); unparsable or
    /// out-of-range values are ignored.
    public static func threadCount(environment: [String: String], processors: Int) -> Int {
        let cores = max(1, processors)
        if let text = environment["PEFT_THREADS"], let value = Int(text), value >= 1 { return min(value, 4 * cores) }
        if let text = environment["OMPI_COMM_WORLD_LOCAL_SIZE"], let local = Int(text), local > 1 {
            return max(1, cores / local)
        }
        return cores
    }

    /// False under an address-space limit (`ulimit -v`): then work stays on the calling thread. A thread that
    /// cannot be created for lack of address space makes libdispatch wait and retry for ever, so a limited process
    /// starts no thread after start-up (products are confined to one thread there anyway, see
    /// `OpenBLAS.confinedToLoadingThread`).
    public static let mayStartThreads: Bool = OpenBLAS.addressSpaceLimit() == nil

    /// Calls `body` on disjoint sub-ranges covering `0..<count`, in parallel when the work is large enough.
    /// `grain` is the smallest number of items worth sending to another thread.
    /// `chunksPerWorker` above 1 cuts the work finer than one piece per thread, so that a thread that starts late
    /// (woken after the others, or sharing its core with another process) takes fewer pieces instead of holding
    /// every other thread up: worth it for short calls such as the per-token products of decoding.
    @inline(__always)
    public static func forEachChunk(_ count: Int, grain: Int = 16_384, chunksPerWorker: Int = 1,
                                    _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(workerCount * max(1, chunksPerWorker), max(1, count / max(grain, 1)))
        if chunks <= 1 { body(0..<count); return }
        if prefersSpinningHelpers, SpinningHelpers.run(count: count, chunks: chunks, body) { return }
        DispatchQueueBridge.concurrentPerform(chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            body(start..<end)
        }
    }

    /// Whether the spinning helper threads run (two or more workers, threads allowed); without them
    /// `withSpinningHelpers` changes nothing.
    public static var hasSpinningHelpers: Bool { SpinningHelpers.pool != nil }

    /// True inside `withSpinningHelpers`.
    @TaskLocal static var prefersSpinningHelpers = false

    /// Runs `body` with `forEachChunk` using helper threads that stay awake (spinning, for a fraction of a
    /// millisecond) between calls instead of libdispatch's, which sleep after each: for work made of many calls of
    /// tens of microseconds, such as decoding a token with a language model, where waking a thread per call costs as
    /// much as the call. A call made while another thread holds the helpers, or from inside a chunk, uses libdispatch.
    public static func withSpinningHelpers<R>(_ body: () throws -> R) rethrows -> R {
        try $prefersSpinningHelpers.withValue(true, operation: body)
    }
}

/// The process's spinning helper threads (VectorKernels/SpinningPool.c): one fewer than `Parallel.workerCount`,
/// started on first use; none when threads may not be started.
enum SpinningHelpers {
    /// How long a helper spins for the next call before it sleeps.
    static let spinMicroseconds = 200

    nonisolated(unsafe) static let pool: OpaquePointer? =
        Parallel.mayStartThreads && Parallel.workerCount > 1
            ? peft_spinning_pool_create(Int32(Parallel.workerCount - 1), spinMicroseconds) : nil

    /// One call's work, reached from the C helpers through an unretained pointer.
    private final class Job {
        let count: Int, chunks: Int
        let body: (Range<Int>) -> Void
        let context: ExecutionContext
        init(count: Int, chunks: Int, body: @escaping (Range<Int>) -> Void, context: ExecutionContext) {
            self.count = count
            self.chunks = chunks
            self.body = body
            self.context = context
        }
    }

    /// Runs chunk i of `chunks` (the range count*i/chunks ..< count*(i+1)/chunks) for every i on the caller and the
    /// helpers; false (nothing run) when the pool is unavailable or busy.
    static func run(count: Int, chunks: Int, _ body: (Range<Int>) -> Void) -> Bool {
        guard let pool else { return false }
        return withoutActuallyEscaping(body) { body in
            let job = Job(count: count, chunks: chunks, body: body, context: ExecutionContext.current)
            let ran = peft_spinning_pool_run(pool, chunks, { pointer, index in
                guard let pointer else { return }
                let job = Unmanaged<Job>.fromOpaque(pointer).takeUnretainedValue()
                let chunk = Int(index)
                let range = job.count * chunk / job.chunks ..< job.count * (chunk + 1) / job.chunks
                job.context.run { job.body(range) }
            }, Unmanaged.passUnretained(job).toOpaque())
            return ran != 0
        }
    }
}
