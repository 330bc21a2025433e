import BLASBinding
import Foundation

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
    @inline(__always)
    public static func forEachChunk(_ count: Int, grain: Int = 16_384, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(workerCount, max(1, count / max(grain, 1)))
        if chunks <= 1 { body(0..<count); return }
        DispatchQueueBridge.concurrentPerform(chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            body(start..<end)
        }
    }
}
