import ArgumentParser
import Collectives
import Foundation

/// The cost of the gradient allreduce alone, per buffer size, for the scaling model in BENCHMARKS.md.
struct AllreduceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time an in-place float32 sum over the ranks of mpirun, per buffer size (run under mpirun -n N).",
        discussion: "Example: mpirun -n 2 peft bench allreduce --megabytes 0.6 0.9 8 88")
    @Option(parsing: .upToNextOption, help: "Buffer sizes in MB (10^6 bytes).") var megabytes: [Double] = [0.6, 0.9, 8, 32, 88]
    @Option(help: "Timed repetitions per size (after one untimed).") var repeats = 10

    func run() throws {
        let group = try joinProcessGroup()
        guard group.isDistributed else {
            throw ValidationError("run it under mpirun with two or more ranks, e.g. mpirun -n 2 peft bench allreduce")
        }
        guard repeats >= 1, repeats <= 10_000 else { throw ValidationError("--repeats must be in 1...10000") }
        for size in megabytes {
            guard size.isFinite, size > 0, size <= 4096 else { throw ValidationError("--megabytes: \(size) is not in (0, 4096]") }
        }
        if group.isLeader {
            print("| MB per rank | ms per allreduce (median) | bus bandwidth GB/s |")
            print("|---|---|---|")
        }
        for size in megabytes {
            let count = max(1, Int(size * 1e6 / 4))
            var buffer = [Float](repeating: 1, count: count)
            var times: [Double] = []
            for round in 0...repeats {
                let started = Date()
                try buffer.withUnsafeMutableBufferPointer {
                    try group.allreduceSum($0.baseAddress!, count: count, what: "the benchmark allreduce")
                }
                if round > 0 { times.append(Date().timeIntervalSince(started)) }
            }
            // Every rank must agree on the time: the slowest rank's median.
            let median = times.sorted()[times.count / 2]
            let slowest = try group.allreduceMax([median], what: "the benchmark timing")[0]
            // A ring allreduce moves 2 (N-1)/N of the buffer through each rank's link.
            let bus = 2 * Double(group.size - 1) / Double(group.size) * Double(count * 4) / slowest / 1e9
            if group.isLeader { print(String(format: "| %.2f | %.2f | %.2f |", Double(count * 4) / 1e6, slowest * 1e3, bus)) }
        }
        group.finalize()
    }
}
