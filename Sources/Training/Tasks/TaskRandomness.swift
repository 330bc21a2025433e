import Engine

/// Deterministic seeds and draws for building tasks: the same inputs give the same numbers on every run and
/// machine (no `Hasher`, whose seed changes per process, and no standard-library shuffle, whose algorithm is
/// not promised to stay the same).
enum TaskRandomness {
    /// A seed derived from a task name, a purpose (e.g. "test", "pool") and up to two numbers.
    static func seed(task: String, purpose: String, _ first: UInt64 = 0, _ second: UInt64 = 0) -> UInt64 {
        var value = fnv1a(task) ^ mix(fnv1a(purpose))
        value = mix(value ^ mix(first &+ 0x9E37_79B9_7F4A_7C15))
        return mix(value ^ mix(second &+ 0xD1B5_4A32_D192_ED03))
    }

    /// A generator for a task, purpose and numbers (see ``seed(task:purpose:_:_:)``).
    static func generator(task: String, purpose: String, _ first: UInt64 = 0, _ second: UInt64 = 0) -> RandomGenerator {
        RandomGenerator(seed: seed(task: task, purpose: purpose, first, second))
    }

    /// 64-bit FNV-1a hash of the UTF-8 bytes.
    private static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    /// SplitMix64 finaliser: spreads every input bit over the output.
    private static func mix(_ input: UInt64) -> UInt64 {
        var x = input
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }
}

extension RandomGenerator {
    /// Uniform integer in `0..<bound` (`bound` > 0), by the high half of a 64x64-bit product.
    mutating func taskIndex(below bound: Int) -> Int {
        precondition(bound > 0, "taskIndex(below:) needs a positive bound")
        return Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// Uniform double in `[range.lowerBound, range.upperBound)` from 53 random bits.
    mutating func taskUniform(_ range: ClosedRange<Double>) -> Double {
        let unit = Double(next() >> 11) * 0x1p-53
        return range.lowerBound + (range.upperBound - range.lowerBound) * unit
    }

    /// Shuffles `array` in place (Fisher-Yates, drawing with ``taskIndex(below:)``).
    mutating func taskShuffle<Element>(_ array: inout [Element]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = taskIndex(below: i + 1)
            if i != j { array.swapAt(i, j) }
        }
    }
}
