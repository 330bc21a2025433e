import BF16Kernels
import VectorKernels

/// A family of hand-written CPU kernels for the hot non-GEMM work (GELU, softmax, LayerNorm and their gradients,
/// attention's per-head products, transposes, SHiRA's sampled dot products). The engine picks the most capable
/// family the CPU supports, at run time, from one binary; `ExecutionContext.kernels` may ask for a less capable
/// one (tests compare them, `PEFT_SIMD` sets it for a process). Every family computes the same values up to
/// float32 rounding.
public enum KernelSet: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// Swift SIMD code compiled for the baseline target (SSE2 on x86-64, NEON on arm64).
    case portable = 0
    /// C kernels with AVX2 and FMA intrinsics: eight floats per register.
    case avx2 = 1
    /// C kernels with AVX-512 F/DQ intrinsics: sixteen floats per register.
    case avx512 = 2

    /// The most capable family this CPU and OS can run.
    public static let best: KernelSet = {
        if peft_avx512_supported() != 0 { return .avx512 }
        if peft_avx2_supported() != 0 { return .avx2 }
        return .portable
    }()

    /// Every family this CPU can run, least capable first.
    public static var available: [KernelSet] { allCases.filter { $0 <= best } }

    /// Whether this CPU can run the family.
    public var isSupported: Bool { self <= Self.best }

    /// The family a `PEFT_SIMD` value or a command-line option names: `portable` (or `generic`), `avx2` (or
    /// `avx2-fma`), `avx512`; nil for anything else.
    public init?(name: String) {
        switch name.lowercased() {
        case "portable", "generic": self = .portable
        case "avx2", "avx2-fma": self = .avx2
        case "avx512", "avx-512": self = .avx512
        default: return nil
        }
    }

    public static func < (a: KernelSet, b: KernelSet) -> Bool { a.rawValue < b.rawValue }

    /// The family's name: avx512, avx2-fma, or portable (with the ISA Swift SIMD compiles to).
    public var description: String {
        switch self {
        case .avx512: return "avx512"
        case .avx2: return "avx2-fma"
        case .portable:
            #if arch(arm64)
            return "portable (neon)"
            #elseif arch(x86_64)
            return "portable (sse2)"
            #else
            return "portable"
            #endif
        }
    }
}

/// Which elementwise kernels run. Swift builds `Float16x` code for the baseline target (SSE2 on x86-64), so on
/// CPUs with AVX2 or AVX-512 the hot non-GEMM ops call C kernels written with intrinsics (VectorKernels, and
/// BF16Kernels in bf16 mode); elsewhere, or when switched off, the Swift SIMD code and OpenBLAS run.
public enum ElementwiseKernels {
    /// True when this CPU and OS can run the AVX-512 kernels.
    public static var avx512Supported: Bool { KernelSet.best == .avx512 }

    /// The family in use for the running code: the context's choice, capped by what the CPU supports.
    public static var active: KernelSet { min(ExecutionContext.current.kernels, KernelSet.best) }

    /// Whether the AVX-512 kernels run (the bf16 kernels and the AVX-512 transposes they use need them).
    public static var useAVX512: Bool { active == .avx512 }

    /// What runs, for logs: the family and, when the bf16 GEMM can run, "-bf16" (e.g. `avx512-bf16`, `avx2-fma`).
    public static var summary: String {
        let set = active
        return set == .avx512 && GEMMSettings.bfloat16Supported ? "avx512-bf16" : set.description
    }

    /// The C kernels of the active family; nil when the portable Swift code runs.
    static var table: VectorKernelTable? { VectorKernelTable.of(active) }
}

/// The C kernels of one family as function values, so an op reads the family once and calls through it.
struct VectorKernelTable: Sendable {
    typealias Pointer = UnsafePointer<Float>?
    typealias MutablePointer = UnsafeMutablePointer<Float>?
    let geluForward: @convention(c) (Pointer, MutablePointer, Int) -> Void
    let geluBackward: @convention(c) (Pointer, Pointer, MutablePointer, Int, Int32) -> Void
    let softmaxRows: @convention(c) (MutablePointer, Int, Int, Int) -> Void
    let softmaxBackwardRows: @convention(c) (Pointer, MutablePointer, Int, Int) -> Void
    let layerNormForward: @convention(c) (Pointer, Pointer, Pointer, MutablePointer, MutablePointer, MutablePointer,
                                          Int, Int, Float) -> Void
    let layerNormBackward: @convention(c) (Pointer, Pointer, Pointer, Pointer, Pointer, MutablePointer,
                                           MutablePointer, MutablePointer, Int, Int) -> Void
    let smallGEMM: @convention(c) (Int, Int, Int, Float, Pointer, Int, Int, Pointer, Int, Float, MutablePointer,
                                   Int) -> Void
    let transpose: @convention(c) (Pointer, Int, Int, Int, MutablePointer, Int) -> Void
    let sampledDots: @convention(c) (Pointer, Pointer, Int, UnsafePointer<Int32>?, UnsafePointer<Int32>?, Int, Float,
                                     MutablePointer) -> Void
    /// Floats per register: the transposes work in blocks of this many rows.
    let lanes: Int

    static let avx512 = VectorKernelTable(
        geluForward: peft_gelu_forward_avx512, geluBackward: peft_gelu_backward_avx512,
        softmaxRows: peft_softmax_rows_avx512, softmaxBackwardRows: peft_softmax_backward_rows_avx512,
        layerNormForward: peft_layernorm_forward_avx512, layerNormBackward: peft_layernorm_backward_avx512,
        smallGEMM: peft_small_gemm_avx512, transpose: peft_transpose_avx512, sampledDots: peft_sampled_dots_avx512,
        lanes: 16)

    static let avx2 = VectorKernelTable(
        geluForward: peft_gelu_forward_avx2, geluBackward: peft_gelu_backward_avx2,
        softmaxRows: peft_softmax_rows_avx2, softmaxBackwardRows: peft_softmax_backward_rows_avx2,
        layerNormForward: peft_layernorm_forward_avx2, layerNormBackward: peft_layernorm_backward_avx2,
        smallGEMM: peft_small_gemm_avx2, transpose: peft_transpose_avx2, sampledDots: peft_sampled_dots_avx2,
        lanes: 8)

    static func of(_ set: KernelSet) -> VectorKernelTable? {
        switch set {
        case .avx512: return .avx512
        case .avx2: return .avx2
        case .portable: return nil
        }
    }
}
