/// A small, fast, seedable generator (xoshiro128** seeded by SplitMix64): same seed, same numbers.
public struct RandomGenerator: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt32

    /// A generator whose whole sequence is determined by `seed`.
    public init(seed: UInt64) {
        var z = seed
        func splitMix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        let a = splitMix(), b = splitMix()
        s0 = UInt32(truncatingIfNeeded: a); s1 = UInt32(truncatingIfNeeded: a >> 32)
        s2 = UInt32(truncatingIfNeeded: b); s3 = UInt32(truncatingIfNeeded: b >> 32)
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    @inline(__always)
    private mutating func next32() -> UInt32 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 25) &* 9
        let t = s1 << 9
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 11 | s3 >> 21
        return result
    }

    public mutating func next() -> UInt64 { UInt64(next32()) << 32 | UInt64(next32()) }

    /// Uniform in [0, 1).
    @inline(__always)
    public mutating func nextUniform() -> Float { Float(next32() >> 8) * (1.0 / 16_777_216.0) }

    /// Standard normal (Box-Muller).
    public mutating func nextNormal() -> Float {
        let u1 = max(nextUniform(), 1e-7), u2 = nextUniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
}

extension Tensor {
    /// A tensor of normal samples with the given standard deviation.
    public static func randomNormal(_ shape: [Int], std: Float = 1, mean: Float = 0,
                                    generator: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t.data[i] = mean + std * generator.nextNormal() }
        return t
    }

    /// A tensor of uniform samples in [low, high).
    public static func randomUniform(_ shape: [Int], low: Float = 0, high: Float = 1,
                                     generator: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t.data[i] = low + (high - low) * generator.nextUniform() }
        return t
    }
}

import Foundation
