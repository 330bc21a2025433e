import Foundation
import MPIShim

/// A failed collective operation or an MPI set-up problem, with the rank it happened on.
public struct CollectiveError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The processes of one data-parallel job and the collective operations between them.
///
/// A process started by `mpirun -n N` (Open MPI, N > 1) belongs to a group of N ranks; any other process is a group
/// of one, where every operation returns at once and no MPI library is needed. Open MPI is loaded at run time
/// (`PEFT_MPI_LIBRARY` names the file; default `libmpi.so.40`), so the package builds and runs without it.
///
/// Every collective is watched: when it does not finish within `timeout` seconds, the process prints which ranks
/// never reached it (rank 0 knows all of them; the others know whether rank 0 did) and aborts the whole job, so a
/// dead, hung or stopped rank fails the job instead of hanging it.
public final class ProcessGroup: @unchecked Sendable {
    /// This process's rank, 0..<size.
    public let rank: Int
    /// The number of processes.
    public let size: Int
    /// Seconds a collective may take before the job is aborted (0: wait for ever).
    public var timeout: Double
    /// The MPI library's own description, for `--verbose` (nil for a group of one).
    public let libraryVersion: String?
    /// Collectives started so far (all ranks start the same ones in the same order).
    private var sequence = 0
    /// Seconds spent waiting in collectives so far, and the bytes reduced or broadcast (this rank's buffer).
    public private(set) var collectiveSeconds = 0.0
    public private(set) var collectiveBytes = 0

    /// A group of one: no MPI.
    public static let single = ProcessGroup(rank: 0, size: 1, timeout: 0, libraryVersion: nil)

    /// The default seconds a collective may take (`PEFT_MPI_TIMEOUT` overrides it).
    public static let defaultTimeout = 600.0

    private init(rank: Int, size: Int, timeout: Double, libraryVersion: String?) {
        self.rank = rank
        self.size = size
        self.timeout = timeout
        self.libraryVersion = libraryVersion
    }

    /// True with more than one rank.
    public var isDistributed: Bool { size > 1 }
    /// True for the rank that writes files and logs (rank 0).
    public var isLeader: Bool { rank == 0 }

    private static let joined: Result<ProcessGroup, CollectiveError> = {
        do { return .success(try join(environment: ProcessInfo.processInfo.environment)) } catch let error as CollectiveError {
            return .failure(error)
        } catch {
            return .failure(CollectiveError("\(error)"))
        }
    }()

    /// This process's group: the MPI job it was launched in (initialising MPI on first use), or `single`.
    public static func world() throws -> ProcessGroup { try joined.get() }

    /// The world size a launcher announced in `environment` (1 when none did).
    public static func launchedSize(environment: [String: String]) throws -> Int {
        guard let text = environment["OMPI_COMM_WORLD_SIZE"] else {
            if let other = environment["PMI_SIZE"] ?? environment["MPI_LOCALNRANKS"], (Int(other) ?? 1) > 1 {
                throw CollectiveError("this process was started by an MPI launcher other than Open MPI's mpirun (PMI_SIZE=\(other)); SwiftPEFT runs under Open MPI 4 or later")
            }
            return 1
        }
        guard let size = Int(text), size >= 1 else {
            throw CollectiveError("OMPI_COMM_WORLD_SIZE is '\(text)', not a positive number of ranks")
        }
        return size
    }

    private static func join(environment: [String: String]) throws -> ProcessGroup {
        guard try launchedSize(environment: environment) > 1 else { return single }
        var message = [CChar](repeating: 0, count: 1024)
        if peft_mpi_load(environment["PEFT_MPI_LIBRARY"], &message, message.count) != 0 {
            throw CollectiveError("mpirun started this process, but \(Self.text(message)); install Open MPI (apt install openmpi-bin libopenmpi-dev) or set PEFT_MPI_LIBRARY to its libmpi.so")
        }
        try check(peft_mpi_init(), "MPI_Init", rank: nil)
        var rank: Int32 = 0, size: Int32 = 0
        try check(peft_mpi_rank(&rank), "MPI_Comm_rank", rank: nil)
        try check(peft_mpi_size(&size), "MPI_Comm_size", rank: Int(rank))
        var version = [CChar](repeating: 0, count: 1024)
        let described = peft_mpi_library_version(&version, version.count) == 0 ? Self.text(version) : nil
        var timeout = defaultTimeout
        if let text = environment["PEFT_MPI_TIMEOUT"] {
            guard let value = Double(text), value.isFinite, value >= 0 else {
                throw CollectiveError("PEFT_MPI_TIMEOUT is '\(text)'; give seconds (0 waits for ever)")
            }
            timeout = value
        }
        return ProcessGroup(rank: Int(rank), size: Int(size), timeout: timeout,
                            libraryVersion: described?.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The characters of a C buffer up to its first NUL.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func check(_ code: Int32, _ call: String, rank: Int?) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 1024)
        peft_mpi_error_string(code, &text, text.count)
        throw CollectiveError("\(rank.map { "rank \($0): " } ?? "")\(call) failed: \(Self.text(text))")
    }

    // MARK: Collectives

    /// The largest element count one MPI call carries; longer buffers go in several.
    static let chunkElements = 1 << 26

    /// Sums `count` floats at `values` over all ranks, in place; `what` names the operation in errors.
    public func allreduceSum(_ values: UnsafeMutablePointer<Float>, count: Int, what: String) throws {
        guard isDistributed, count > 0 else { return }
        var offset = 0
        while offset < count {
            let n = min(Self.chunkElements, count - offset)
            try watch(what, bytes: n * 4) { peft_mpi_iallreduce_sum_float(values + offset, Int32(n), &$0) }
            offset += n
        }
    }

    /// The element-wise sum of `values` over all ranks.
    public func allreduceSum(_ values: [Double], what: String) throws -> [Double] {
        try allreduce(values, what: what, peft_mpi_iallreduce_sum_double)
    }

    /// The element-wise maximum of `values` over all ranks.
    public func allreduceMax(_ values: [Double], what: String) throws -> [Double] {
        try allreduce(values, what: what, peft_mpi_iallreduce_max_double)
    }

    private func allreduce(_ values: [Double], what: String,
                           _ operation: (UnsafeMutablePointer<Double>?, Int32, UnsafeMutablePointer<peft_mpi_request?>?) -> Int32) throws -> [Double] {
        guard isDistributed, !values.isEmpty else { return values }
        var buffer = values
        try buffer.withUnsafeMutableBufferPointer { pointer in
            try watch(what, bytes: pointer.count * 8) { operation(pointer.baseAddress, Int32(pointer.count), &$0) }
        }
        return buffer
    }

    /// Rank 0's `bytes` on every rank (the argument is ignored elsewhere).
    public func broadcast(_ bytes: [UInt8], what: String) throws -> [UInt8] {
        guard isDistributed else { return bytes }
        var length: [UInt8] = withUnsafeBytes(of: Int64(isLeader ? bytes.count : 0).littleEndian) { Array($0) }
        try length.withUnsafeMutableBytes { raw in
            try watch(what + " (length)", bytes: 8) { peft_mpi_ibcast_bytes(raw.baseAddress, 8, 0, &$0) }
        }
        let count = length.withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(as: Int64.self))) }
        guard count >= 0, count <= 1 << 40 else { throw CollectiveError("rank \(rank): \(what): rank 0 announced \(count) bytes") }
        var buffer = isLeader ? bytes : [UInt8](repeating: 0, count: count)
        try buffer.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < count {
                let n = min(Self.chunkElements, count - offset)
                try watch(what, bytes: n) { peft_mpi_ibcast_bytes(raw.baseAddress! + offset, Int32(n), 0, &$0) }
                offset += n
            }
        }
        return buffer
    }

    /// Rank 0's `count` floats at `values` on every rank, in place.
    public func broadcast(_ values: UnsafeMutablePointer<Float>, count: Int, what: String) throws {
        guard isDistributed, count > 0 else { return }
        var offset = 0
        while offset < count {
            let n = min(Self.chunkElements, count - offset)
            try watch(what, bytes: n * 4) { peft_mpi_ibcast_bytes(UnsafeMutableRawPointer(values + offset), Int32(n * 4), 0, &$0) }
            offset += n
        }
    }

    /// Every rank's `bytes`, in rank order, on every rank (for small payloads such as result records: the bytes
    /// travel as floats in one summing allreduce).
    public func allgather(_ bytes: [UInt8], what: String) throws -> [[UInt8]] {
        guard isDistributed else { return [bytes] }
        var lengths = [Double](repeating: 0, count: size)
        lengths[rank] = Double(bytes.count)
        lengths = try allreduceSum(lengths, what: what + " (lengths)")
        let counts = lengths.map { Int($0) }
        let total = counts.reduce(0, +)
        guard total <= 1 << 30 else { throw CollectiveError("rank \(rank): \(what): \(total) bytes is too much to gather") }
        var buffer = [Float](repeating: 0, count: total)
        let offset = counts.prefix(rank).reduce(0, +)
        for (index, byte) in bytes.enumerated() { buffer[offset + index] = Float(byte) }
        try buffer.withUnsafeMutableBufferPointer { try allreduceSum($0.baseAddress!, count: total, what: what) }
        var parts: [[UInt8]] = []
        var start = 0
        for count in counts {
            parts.append(buffer[start..<(start + count)].map { UInt8(max(0, min(255, $0.rounded()))) })
            start += count
        }
        return parts
    }

    /// Waits until every rank gets here.
    public func barrier(what: String) throws {
        _ = try allreduceSum([0], what: what)
    }

    /// Ends MPI at the end of a successful run (every rank must call it).
    public func finalize() {
        guard isDistributed else { return }
        _ = peft_mpi_finalize()
    }

    /// Prints `message` and ends every process of the job (a fault no rank can recover from).
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data(("peft: rank \(rank) of \(size): \(message)\n").utf8))
        if isDistributed { _ = peft_mpi_abort(1) }
        exit(1)
    }

    /// Starts a collective with `start` and waits for it, next to the arrival notices that tell who reached it:
    /// every rank tells rank 0, and rank 0 tells every rank, with a tag of this collective's number.
    private func watch(_ what: String, bytes: Int, _ start: (inout peft_mpi_request?) -> Int32) throws {
        sequence += 1
        let tag = Int32(sequence % 30_000 + 1)
        let began = Date()
        let peers = isLeader ? Array(1..<size) : [0]
        let mine = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        let received = UnsafeMutablePointer<Int64>.allocate(capacity: peers.count)
        defer { mine.deallocate(); received.deallocate() }
        mine.pointee = Int64(sequence)
        var notices: [peft_mpi_request?] = Array(repeating: nil, count: 2 * peers.count)
        for (i, peer) in peers.enumerated() {
            try Self.check(peft_mpi_isend_int64(mine, Int32(peer), tag, &notices[2 * i]), "MPI_Isend (\(what))", rank: rank)
            try Self.check(peft_mpi_irecv_int64(received + i, Int32(peer), tag, &notices[2 * i + 1]), "MPI_Irecv (\(what))", rank: rank)
        }
        var operation: peft_mpi_request?
        try Self.check(start(&operation), what, rank: rank)
        var pending: [Int] = Array(0..<notices.count)
        var operationDone = false
        var spins = 0
        while !(operationDone && pending.isEmpty) {
            if !operationDone {
                var flag: Int32 = 0
                try Self.check(peft_mpi_test(&operation, &flag), what, rank: rank)
                operationDone = flag != 0
            }
            var still: [Int] = []
            for index in pending {
                var flag: Int32 = 0
                try Self.check(peft_mpi_test(&notices[index], &flag), "MPI_Test (\(what))", rank: rank)
                if flag == 0 { still.append(index) }
            }
            pending = still
            if operationDone && pending.isEmpty { break }
            spins += 1
            if spins > 20_000 {
                if timeout > 0, Date().timeIntervalSince(began) > timeout {
                    // Receives still open (odd indices) belong to peers that never arrived.
                    let missing = pending.filter { $0 % 2 == 1 }.map { peers[$0 / 2] }
                    abort(timeoutMessage(what, missing: missing))
                }
                usleep(100)
            } else {
                sched_yield()
            }
        }
        collectiveSeconds += Date().timeIntervalSince(began)
        collectiveBytes += bytes
    }

    private func timeoutMessage(_ what: String, missing: [Int]) -> String {
        let waited = String(format: "%.0f s", timeout)
        if isLeader {
            if missing.isEmpty {
                return "\(what) did not finish within \(waited), although every rank reached it; the network between the ranks may be down. Aborting the job (PEFT_MPI_TIMEOUT sets the limit)"
            }
            let list = missing.count > 16 ? missing.prefix(16).map(String.init).joined(separator: ", ") + ", ..." : missing.map(String.init).joined(separator: ", ")
            return "\(what) did not finish within \(waited): rank\(missing.count == 1 ? "" : "s") \(list) never reached it (dead, hung or stopped). Aborting the job; the last checkpoint is intact (PEFT_MPI_TIMEOUT sets the limit)"
        }
        if missing.contains(0) {
            return "\(what) did not finish within \(waited): rank 0 never reached it (dead, hung or stopped). Aborting the job (PEFT_MPI_TIMEOUT sets the limit)"
        }
        return "\(what) did not finish within \(waited) while waiting for another rank (rank 0 names it). Aborting the job (PEFT_MPI_TIMEOUT sets the limit)"
    }
}
