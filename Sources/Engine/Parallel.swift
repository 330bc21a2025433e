import BLASBinding
import Foundation

/// Splits work over the machine's cores.
public enum Parallel {
    /// Number of worker threads our own kernels use (the number of active processors).
    public static let workerCount: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

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
