import Foundation
import XCTest
import Engine

/// `Parallel.withSpinningHelpers`: every index of every call is run exactly once, from one caller, from calls
/// nested inside a chunk, and from several threads at once (those not holding the helpers use libdispatch), and
/// the caller's execution context reaches the helpers.
final class SpinningHelpersTests: XCTestCase {
    /// Counts how often each index is visited; chunks write disjoint ranges, so no lock is needed.
    final class Visits: @unchecked Sendable {
        var counts: [Int]
        init(_ n: Int) { counts = [Int](repeating: 0, count: n) }
    }

    func testEveryIndexOfManyShortCallsRunsExactlyOnce() throws {
        try XCTSkipIf(Parallel.workerCount < 2, "one worker: the helpers are not started")
        XCTAssertTrue(Parallel.hasSpinningHelpers, "two or more workers start the helper threads")
        Parallel.withSpinningHelpers {
            for call in 0..<2_000 {
                let n = 1 + call % 97
                let visits = Visits(n)
                Parallel.forEachChunk(n, grain: 1, chunksPerWorker: 4) { range in
                    for i in range { visits.counts[i] += 1 }
                }
                XCTAssertEqual(visits.counts, [Int](repeating: 1, count: n), "call \(call)")
            }
        }
    }

    func testNestedAndConcurrentCallersFallBackAndStillCoverEverything() throws {
        try XCTSkipIf(Parallel.workerCount < 2, "one worker: the helpers are not started")
        let callers = 4, n = 64
        let results = Visits(callers)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            Parallel.withSpinningHelpers {
                var good = 0
                for _ in 0..<200 {
                    let outer = Visits(n * n)
                    Parallel.forEachChunk(n, grain: 1, chunksPerWorker: 4) { rows in
                        for row in rows {
                            // A call from inside a chunk: the helpers are busy, so it takes the other path.
                            Parallel.forEachChunk(n, grain: 1) { columns in
                                for column in columns { outer.counts[row * n + column] += 1 }
                            }
                        }
                    }
                    if outer.counts.allSatisfy({ $0 == 1 }) { good += 1 }
                }
                results.counts[caller] = good
            }
        }
        XCTAssertEqual(results.counts, [Int](repeating: 200, count: callers))
    }

    func testHelpersRunUnderTheCallersExecutionContext() throws {
        try XCTSkipIf(Parallel.workerCount < 2, "one worker: the helpers are not started")
        let seen = Visits(64)
        ExecutionContext.with({ $0.stepSeed = 1234 }) {
            Parallel.withSpinningHelpers {
                Parallel.forEachChunk(64, grain: 1, chunksPerWorker: 4) { range in
                    for i in range { seen.counts[i] = Int(ExecutionContext.current.stepSeed) }
                }
            }
        }
        XCTAssertEqual(seen.counts, [Int](repeating: 1234, count: 64))
    }
}
