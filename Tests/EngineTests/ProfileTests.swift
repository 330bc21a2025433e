import XCTest
import Foundation
import Engine
import BLASBinding
import TestSupport

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

/// The plain-Swift product used on threads that may not call OpenBLAS (under an address-space limit) gives what
/// OpenBLAS gives, for every transpose combination, alpha and beta.
final class PortableSGEMMTests: XCTestCase {
    func testMatchesOpenBLAS() throws {
        let blas = try OpenBLAS.load()
        for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            let m = 5, n = 7, k = 3
            let a = random([m * k], seed: 1).values, b = random([k * n], seed: 2).values, start = random([m * n], seed: 3).values
            var expected = start, got = start
            let lda = transA ? m : k, ldb = transB ? k : n
            blas.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                       beta: 2, c: &expected, ldc: n)
            OpenBLAS.portableSGEMM(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b,
                                   ldb: ldb, beta: 2, c: &got, ldc: n)
            for (g, e) in zip(got, expected) { XCTAssertEqual(g, e, accuracy: 1e-5) }
        }
    }
}
