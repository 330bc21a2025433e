import Dispatch

/// Thin wrapper so kernels can run a fixed number of chunks in parallel.
enum DispatchQueueBridge {
    @inline(__always)
    static func concurrentPerform(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 1 { if iterations == 1 { body(0) }; return }
        DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
    }
}
