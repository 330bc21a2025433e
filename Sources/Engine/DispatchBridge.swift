import BLASBinding
import Dispatch

/// A value handed to other threads on the caller's promise that they use it safely: the kernels give each
/// worker disjoint output ranges, and the call returns only when every worker is done.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}

/// Thin wrapper so kernels can run a fixed number of chunks in parallel.
enum DispatchQueueBridge {
    @inline(__always)
    static func concurrentPerform(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 1 { if iterations == 1 { body(0) }; return }
        // Under an address-space limit no worker thread is started: libdispatch retries a thread it cannot create
        // (its stack does not fit) forever, so the chunks run one after another on the caller.
        if !Parallel.mayStartThreads { for index in 0..<iterations { body(index) }; return }
        // Workers run under the caller's execution context (precision, kernel set, training mode).
        let context = ExecutionContext.current
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(value: body)
            DispatchQueue.concurrentPerform(iterations: iterations) { index in context.run { shared.value(index) } }
        }
    }
}
