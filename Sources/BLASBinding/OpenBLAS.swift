// OpenBLAS, bound at run time.
//
// Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH and picks its kernels when the library is loaded, from the
// CPU it detects and the environment variable OPENBLAS_CORETYPE. On recent AVX-512 CPUs it misdetects the core as
// "Prescott" and runs SGEMM about 5x slower than with its SkylakeX kernels (which give correct results there).
// Linking the library normally would load it before any of our code runs, so the choice could not be made in
// the program. Instead we `dlopen` it on first use, after choosing the core type from /proc/cpuinfo, unless the
// user has set OPENBLAS_CORETYPE themself (their value is always respected).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Row-major / column-major order and transpose flags, with the CBLAS numeric values.
public enum CBLASOrder: Int32, Sendable { case rowMajor = 101, columnMajor = 102 }
public enum CBLASTranspose: Int32, Sendable { case noTrans = 111, trans = 112 }

/// Errors raised while loading the BLAS library.
public struct BLASLoadError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

private typealias SGEMMFunction = @convention(c) (
    Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
    UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
) -> Void
private typealias CoreNameFunction = @convention(c) () -> UnsafeMutablePointer<CChar>?
private typealias SetThreadsFunction = @convention(c) (Int32) -> Void
private typealias GetThreadsFunction = @convention(c) () -> Int32

/// The loaded OpenBLAS library: its SGEMM and what it reports about itself.
public final class OpenBLAS: @unchecked Sendable {
    /// The process-wide instance, loaded on first use.
    public static let shared: OpenBLAS = {
        do { return try OpenBLAS() } catch {
            fatalError("\(error)")
        }
    }()

    /// Path or soname the library was loaded from.
    public let libraryName: String
    /// The core type OpenBLAS runs kernels for (from `openblas_get_corename`).
    public let coreName: String
    /// How the core type was chosen: "set by the user", "chosen for this CPU", or "detected by OpenBLAS".
    public let coreTypeSource: String

    private let sgemmFunction: SGEMMFunction
    private let setThreads: SetThreadsFunction?
    private let getThreads: GetThreadsFunction?

    private init() throws {
        let source: String
        if let userValue = getenv("OPENBLAS_CORETYPE"), !String(cString: userValue).isEmpty {
            source = "set by the user (OPENBLAS_CORETYPE=\(String(cString: userValue)))"
        } else if let chosen = OpenBLAS.preferredCoreType() {
            setenv("OPENBLAS_CORETYPE", chosen, 0)
            source = "chosen for this CPU (\(chosen))"
        } else {
            source = "detected by OpenBLAS"
        }
        // The engine splits GEMMs over the cores itself (see Engine/GEMM.swift), so OpenBLAS runs each call on the
        // calling thread. Its own pool would otherwise spin and yield between calls, competing with our kernels.
        setenv("OPENBLAS_NUM_THREADS", "1", 1)
        var candidates = ["libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0", "libopenblas.dylib"]
        if let override = getenv("PEFT_BLAS_LIBRARY") { candidates.insert(String(cString: override), at: 0) }
        var handle: UnsafeMutableRawPointer?
        var loadedName = ""
        for name in candidates {
            if let h = dlopen(name, RTLD_NOW | RTLD_GLOBAL) { handle = h; loadedName = name; break }
        }
        guard let handle else {
            throw BLASLoadError(description: "could not load OpenBLAS (tried \(candidates.joined(separator: ", "))). "
                + "Install it with `apt-get install libopenblas-dev` or set PEFT_BLAS_LIBRARY to its path.")
        }
        // OpenBLAS builds shipped in Python wheels (scipy-openblas32) prefix every symbol with "scipy_".
        let prefix = dlsym(handle, "cblas_sgemm") == nil && dlsym(handle, "scipy_cblas_sgemm") != nil ? "scipy_" : ""
        guard let sgemm = dlsym(handle, prefix + "cblas_sgemm") else {
            throw BLASLoadError(description: "\(loadedName) has no cblas_sgemm symbol")
        }
        sgemmFunction = unsafeBitCast(sgemm, to: SGEMMFunction.self)
        setThreads = dlsym(handle, prefix + "openblas_set_num_threads").map { unsafeBitCast($0, to: SetThreadsFunction.self) }
        getThreads = dlsym(handle, prefix + "openblas_get_num_threads").map { unsafeBitCast($0, to: GetThreadsFunction.self) }
        if let coreSymbol = dlsym(handle, prefix + "openblas_get_corename"),
           let cName = unsafeBitCast(coreSymbol, to: CoreNameFunction.self)() {
            coreName = String(cString: cName)
        } else {
            coreName = "unknown"
        }
        libraryName = loadedName
        coreTypeSource = source
        setThreads?(1)
    }

    /// The OpenBLAS core type whose kernels are fast and correct on this CPU, or nil to let OpenBLAS decide.
    /// AVX-512 (F, BW, DQ, VL) -> SkylakeX; AVX2 + FMA -> Haswell.
    static func preferredCoreType() -> String? {
        guard let file = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(file) }
        var flags = Set<Substring>()
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, file) > 0 {
            let text = String(cString: line!)
            if text.hasPrefix("flags") {
                if let colon = text.firstIndex(of: ":") {
                    flags = Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" }))
                }
                break
            }
        }
        free(line)
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy({ flags.contains(Substring($0)) }) {
            return "SkylakeX"
        }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// Number of threads OpenBLAS uses per call (1: the engine parallelises around it).
    public var threadCount: Int {
        get { Int(getThreads?() ?? 1) }
        set { setThreads?(Int32(newValue)) }
    }

    /// C = alpha * op(A) * op(B) + beta * C, all row-major.
    /// op(A) is m x k, op(B) is k x n, C is m x n; lda/ldb/ldc are the row strides of the stored matrices.
    @inline(__always)
    public func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        sgemmFunction(
            CBLASOrder.rowMajor.rawValue,
            (transA ? CBLASTranspose.trans : .noTrans).rawValue,
            (transB ? CBLASTranspose.trans : .noTrans).rawValue,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// A one-line description for `--verbose` output.
    public var summary: String {
        "OpenBLAS \(libraryName): core \(coreName), \(threadCount) thread per call (the engine splits GEMMs over cores); core type \(coreTypeSource)"
    }
}
