// Vectorised elementary functions over SIMD16<Float>, accurate to a few float32 ulps in the ranges we use.

import Foundation
import VectorKernels

public typealias Float16x = SIMD16<Float>

@inline(__always)
func loadVector(_ p: UnsafePointer<Float>) -> Float16x {
    UnsafeRawPointer(p).loadUnaligned(as: Float16x.self)
}

@inline(__always)
func storeVector(_ v: Float16x, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float16x.self)
}

/// e^x, by range reduction x = n ln2 + r and a degree-6 polynomial on |r| <= ln2/2 (relative error ~2e-7).
/// Written with compare-and-select and a magic-number rounding because Swift's generic SIMD `min`/`max`/
/// `rounded` are not lowered to vector instructions (measured: 13 ns per element instead of under 1).
@inline(__always)
public func vectorExp(_ x: Float16x) -> Float16x {
    let low = Float16x(repeating: -87.3), high = Float16x(repeating: 88.3)
    var clamped = x.replacing(with: low, where: x .< low)
    clamped = clamped.replacing(with: high, where: clamped .> high)
    let magic = Float16x(repeating: 12_582_912)  // 1.5 * 2^23: adding it rounds to the nearest integer
    let shifted = clamped * Float16x(repeating: 1.442_695_04) + magic
    let n = shifted - magic
    var r = clamped - n * Float16x(repeating: 0.693_145_75)
    r = r - n * Float16x(repeating: 1.428_606_8e-6)
    var p = Float16x(repeating: 1.0 / 720)
    p = p * r + Float16x(repeating: 1.0 / 120)
    p = p * r + Float16x(repeating: 1.0 / 24)
    p = p * r + Float16x(repeating: 1.0 / 6)
    p = p * r + Float16x(repeating: 0.5)
    p = p * r + Float16x(repeating: 1)
    p = p * r + Float16x(repeating: 1)
    let integer = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- SIMD16<Int32>(repeating: 0x4B40_0000)
    let exponent = (integer &+ SIMD16<Int32>(repeating: 127)) &<< SIMD16<Int32>(repeating: 23)
    return p * unsafeBitCast(exponent, to: Float16x.self)
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), made odd.
@inline(__always)
public func vectorErf(_ x: Float16x) -> Float16x {
    let zero = Float16x(repeating: 0), one = Float16x(repeating: 1)
    let a = x.replacing(with: -x, where: x .< zero)
    let t = one / (one + Float16x(repeating: 0.327_591_1) * a)
    var poly = Float16x(repeating: 1.061_405_429)
    poly = poly * t + Float16x(repeating: -1.453_152_027)
    poly = poly * t + Float16x(repeating: 1.421_413_741)
    poly = poly * t + Float16x(repeating: -0.284_496_736)
    poly = poly * t + Float16x(repeating: 0.254_829_592)
    poly = poly * t
    let y = one - poly * vectorExp(zero - a * a)
    return y.replacing(with: zero - y, where: x .< zero)
}

/// Scalar versions through the vector code, so scalar tails give identical results.
@inline(__always)
func scalarViaVector(_ x: Float, _ f: (Float16x) -> Float16x) -> Float {
    f(Float16x(repeating: x))[0]
}
