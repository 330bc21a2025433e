// OpenBLAS, bound at run time.
//
// Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH and picks its kernels when the library is loaded, from the
// CPU it detects and the environment variable OPENBLAS_CORETYPE. On recent AVX-512 CPUs it misdetects the core as
// "Prescott" and runs SGEMM about 10x slower than with its SkylakeX kernels (which give correct results there;
// BENCHMARKS.md: 21 against 197-204 GFLOP/s on a 2048^3 product).
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
    private static let loaded: Result<OpenBLAS, BLASLoadError> = {
        do {
            let library = try OpenBLAS()
            try library.reserveBuffers()
            return .success(library)
        } catch let error as BLASLoadError {
            return .failure(error)
        } catch {
            return .failure(BLASLoadError(description: "\(error)"))
        }
    }()

    /// Loads the library (once per process) and reserves its per-thread buffers, or throws a clear error: no
    /// library found, `PEFT_BLAS_LIBRARY` naming something that cannot be loaded, no `cblas_sgemm`, or an
    /// address-space limit (`ulimit -v`) too small for OpenBLAS's buffers. Programs call this at start-up (the
    /// command-line tool and `TrainingSession` do), before anything uses `shared`.
    @discardableResult
    public static func load() throws -> OpenBLAS { try loaded.get() }

    /// The process-wide instance. Call `load()` first to get a failure as an error; reaching this with a library
    /// that could not be loaded is a programming error and stops the program with the reason.
    public static var shared: OpenBLAS {
        switch loaded {
        case .success(let library): return library
        case .failure(let error): fatalError("\(error) (OpenBLAS.load() reports this as an error; call it at start-up)")
        }
    }

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
        #if os(macOS)
        // Accelerate's CBLAS (AMX-backed on Apple silicon) first, then a Homebrew OpenBLAS.
        var candidates = ["/System/Library/Frameworks/Accelerate.framework/Accelerate", "libopenblas.dylib",
                          "/opt/homebrew/opt/openblas/lib/libopenblas.dylib"]
        #else
        var candidates = ["libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"]
        #endif
        let override = getenv("PEFT_BLAS_LIBRARY").map { String(cString: $0) } ?? ""
        // A library the user names is the only one tried: silently using another would hide their mistake.
        if !override.isEmpty { candidates = [override] }
        var handle: UnsafeMutableRawPointer?
        var loadedName = ""
        var failures: [String] = []
        for name in candidates {
            if let h = dlopen(name, RTLD_NOW | RTLD_GLOBAL) { handle = h; loadedName = name; break }
            failures.append(dlerror().map { String(cString: $0) } ?? "\(name): cannot be loaded")
        }
        guard let handle else {
            let limit = OpenBLAS.addressSpaceLimit().map { " The address-space limit (ulimit -v) is \($0 >> 20) MB; loading a library needs room to map it." } ?? ""
            if !override.isEmpty {
                throw BLASLoadError(description: "PEFT_BLAS_LIBRARY=\(override) cannot be loaded: \(failures.joined(separator: "; ")).\(limit) Point it at an OpenBLAS shared library or unset it.")
            }
            throw BLASLoadError(description: "could not load OpenBLAS (\(failures.joined(separator: "; "))).\(limit) "
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

    /// Bytes OpenBLAS maps for each thread that calls it (its BUFFER_SIZE of 128 MiB plus pages;
    /// measured as the growth of VmSize after one call, about 132 MB, on 0.3.21).
    static let bytesPerCallingThread = 136 << 20

    /// The soft address-space limit (`ulimit -v`), or nil when there is none.
    public static func addressSpaceLimit() -> Int? {
        var limit = rlimit()
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_AS.rawValue)
        #else
        let resource = RLIMIT_AS
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }  // RLIM_INFINITY
        return Int(clamping: limit.rlim_cur)
    }

    /// The process's current virtual size in bytes (Linux: /proc/self/statm), or nil where unknown.
    static func virtualSize() -> Int? {
        #if os(Linux)
        guard let file = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let pages = Int(text.split(separator: " ").first ?? "") else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }

    /// True under an address-space limit (`ulimit -v`): then every product must run on the thread that loaded
    /// the library (the engine stops splitting GEMMs over its worker threads). OpenBLAS maps a 128 MiB buffer for
    /// each thread that calls it and retries a failed mapping forever, so with many threads a limited process
    /// would hang at a product; with one thread, whose buffer is reserved at load, it cannot.
    public private(set) var confinedToLoadingThread = false
    /// The thread whose OpenBLAS buffer `reserveBuffers` mapped.
    private var loadingThread: pthread_t?

    /// Whether OpenBLAS may be called from the running thread: always without an address-space limit; under one,
    /// only from the thread whose buffer is reserved. `sgemm` computes other threads' products itself.
    public var mayCallFromThisThread: Bool {
        guard confinedToLoadingThread, let loadingThread else { return true }
        return pthread_equal(loadingThread, pthread_self()) != 0
    }

    /// Under an address-space limit, checks that OpenBLAS's buffer fits and makes OpenBLAS map it now, on this
    /// thread, then confines products to it (see `confinedToLoadingThread`). Without a limit nothing is done.
    func reserveBuffers() throws {
        guard let limit = OpenBLAS.addressSpaceLimit() else { return }
        #if os(Linux)
        // glibc gives each new allocating thread an arena that reserves 64 MiB of address space up front; three of
        // them (data loader, workers) took 192 MB of a 600 MB limit before a tensor was allocated. Under a limit
        // every thread shares the main heap instead.
        // mallopt is declared in <malloc.h>, which the Glibc module does not export; M_ARENA_MAX is -8 there.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
            _ = unsafeBitCast(symbol, to: Mallopt.self)(-8, 1)
        }
        #endif
        let needed = OpenBLAS.bytesPerCallingThread
        let used = OpenBLAS.virtualSize() ?? 0
        guard limit - used >= needed + (64 << 20) else {
            throw BLASLoadError(description: "the address-space limit (ulimit -v) is \(limit >> 20) MB and \(used >> 20) MB are in use; OpenBLAS needs about \(needed >> 20) MB for its buffer, and a model needs more. Raise the limit (e.g. `ulimit -v unlimited`).")
        }
        let n = 256  // large enough to take OpenBLAS's buffered path (small products bypass the buffer)
        let a = [Float](repeating: 0, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        a.withUnsafeBufferPointer { ap in
            c.withUnsafeMutableBufferPointer { cp in
                sgemm(transA: false, transB: false, m: n, n: n, k: n, a: ap.baseAddress!, lda: n,
                      b: ap.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n)
            }
        }
        loadingThread = pthread_self()
        confinedToLoadingThread = true
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
        // Under an address-space limit, another thread's first call would make OpenBLAS map a buffer that may not
        // fit and retry forever (a hang): those threads' products (image resizing on the prefetch thread) are
        // computed here instead.
        guard mayCallFromThisThread else {
            Self.portableSGEMM(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                               ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        sgemmFunction(
            CBLASOrder.rowMajor.rawValue,
            (transA ? CBLASTranspose.trans : .noTrans).rawValue,
            (transB ? CBLASTranspose.trans : .noTrans).rawValue,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C = alpha op(A) op(B) + beta C, row-major, in plain Swift (for threads that may not call OpenBLAS).
    public static func portableSGEMM(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 { row.update(repeating: 0, count: n) } else if beta != 1 { for j in 0..<n { row[j] *= beta } }
            for p in 0..<k {
                let left = alpha * (transA ? a[p * lda + i] : a[i * lda + p])
                if left == 0 { continue }
                if transB { for j in 0..<n { row[j] += left * b[j * ldb + p] } }
                else { let bRow = b + p * ldb; for j in 0..<n { row[j] += left * bRow[j] } }
            }
        }
    }

    /// A one-line description for `--verbose` output.
    public var summary: String {
        "OpenBLAS \(libraryName): core \(coreName), \(threadCount) thread per call (the engine splits GEMMs over cores); core type \(coreTypeSource)"
    }
}
