import XCTest
import Foundation
import Engine

/// A profile is a value of the execution context: only the code run under it is profiled, and two profiles on two
/// threads at once each see exactly their own work.
final class ProfileTests: XCTestCase {
    static func product(_ size: Int) {
        var generator = RandomGenerator(seed: 1)
        let a = Tensor.randomNormal([size, size], generator: &generator)
        let b = Tensor.randomNormal([size, size], generator: &generator)
        a.requiresGrad = true
        matmul(a, b).sum().backward()
    }

    func testTwoProfilesAtOnceEachCountOnlyTheirOwnWork() {
        XCTAssertFalse(Profiler.isEnabled)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var profiles: [Int: Profile] = [:]
        }
        let results = Results()
        let group = DispatchGroup()
        for size in [32, 64] {
            group.enter()
            Thread.detachNewThread {
                let profile = Profile()  // op times are taken on the thread that makes the profile
                ExecutionContext.with({ $0.profile = profile }) { for _ in 0..<3 { Self.product(size) } }
                results.lock.lock(); results.profiles[size] = profile; results.lock.unlock()
                group.leave()
            }
        }
        Self.product(48)  // unprofiled work on this thread counts nowhere
        group.wait()
        for size in [32, 64] {
            let profile = results.profiles[size]!
            // Forward 2 n^3 per product; the backward's dA = dC B^T another 2 n^3 (b needs no gradient).
            XCTAssertEqual(profile.gemmOperations, 3 * 2 * 2 * pow(Double(size), 3), "size \(size)")
            XCTAssertNotNil(profile.forward["matmul"], "the forward op was timed")
            XCTAssertNotNil(profile.backward["matmul"], "the backward op was timed")
        }
        XCTAssertFalse(Profiler.isEnabled, "no profile leaked into this thread's context")
    }
}
