import Engine
import Foundation
import Metrics
import Training

/// Settings of an `AdapterServer`.
public struct ServingOptions: Sendable {
    /// Fused or unfused serving of mergeable adapters (see `SwitchPolicy`).
    public var policy: SwitchPolicy = .auto
    /// At most this many adapters resident at once (nil: no count limit).
    public var maximumResident: Int?
    /// At most this many bytes of adapter tensors resident at once (nil: no limit); the base is not counted.
    public var maximumAdapterBytes: Int?
    /// At most this many examples in one forward pass.
    public var maximumBatch = 32
    /// At most this many requests waiting; more are refused as unavailable (back-pressure, not unbounded memory).
    public var maximumQueued = 4096
    /// Measure each dense mergeable adapter's fused switch cost and unfused overhead when it is loaded (for `auto`).
    public var measureCosts = true

    public init() {}
}

/// Serves many adapters from one base model: requests name an adapter; a single worker thread owns the model,
/// takes the oldest waiting request and every other waiting request for the same adapter (up to
/// `maximumBatch` examples), switches the base to that adapter and runs them as one batch. So requests are
/// grouped by adapter, no request ever sees a half-switched model (only the worker touches it), and every
/// switch starts from the exact base weights (see `SharedBase`).
///
/// Adapters are read on first use (or by `preload`) and kept in a least-recently-used resident set bounded by
/// `ServingOptions.maximumResident` and `maximumAdapterBytes`.
public final class AdapterServer: @unchecked Sendable {
    /// The adapters this server knows by name.
    public let catalog: AdapterCatalog
    /// The base model's name.
    public let modelName: String
    /// What the base classifies.
    public let inputKind: InputKind
    public let options: ServingOptions

    public enum InputKind: String, Sendable { case image, text }

    private let base: SharedBase
    private let condition = NSCondition()
    private var queue: [Work] = []
    private var stopping = false
    private var stopped: [CheckedContinuation<Void, Never>] = []
    private var workerDone = false
    // Worker-thread state.
    private var resident: [String: ResidentAdapter] = [:]
    /// Measured fused switch cost and unfused overhead by adapter shape (`costKey`): adapters of one method, rank and
    /// placement cost the same, so only the first of them is timed (the timing takes about 11 probe forwards).
    private var measuredCosts: [String: (switchSeconds: Double, overheadSeconds: Double)] = [:]
    private var clock: UInt64 = 0
    // Snapshots the worker publishes, read by any thread.
    private let snapshotLock = NSLock()
    private var statistics = ServingStatistics()
    private var residentStatus: [String: AdapterStatus] = [:]
    private var examplesServed: [String: Int] = [:]

    private let switchTimer = Metrics.Timer(label: "peft_switch_seconds")
    private let forwardTimer = Metrics.Timer(label: "peft_forward_seconds")
    private let exampleCounter = Counter(label: "peft_examples_total")
    private let switchCounter = Counter(label: "peft_switches_total")
    private let loadCounter = Counter(label: "peft_adapter_loads_total")
    private let evictionCounter = Counter(label: "peft_adapter_evictions_total")
    private let residentGauge = Gauge(label: "peft_resident_adapters")
    private let tensorBytesGauge = Gauge(label: "peft_tensor_bytes")
    private let queueGauge = Gauge(label: "peft_queued_requests")

    private struct Job {
        let entry: AdapterEntry
        let inputs: [ServingInput]
        let topK: Int
        let continuation: CheckedContinuation<[[ClassProbability]], any Error>
    }

    private enum Work {
        case classify(Job)
        /// Runs on the worker thread; when `adapter` is given, waiting requests for it are served first.
        case task(adapter: String?, body: @Sendable () -> Void)
    }

    /// Loads the base model `model` (a name from `PretrainedModels`) and knows the adapters in `adapters`.
    public init(model: String, adapters: [AdapterEntry], options: ServingOptions = ServingOptions(),
                progress: (String) -> Void = { _ in }) throws {
        guard options.maximumBatch >= 1 else { throw ServingError(.badRequest, "the largest batch must be at least 1, got \(options.maximumBatch)") }
        if let count = options.maximumResident, count < 1 { throw ServingError(.badRequest, "--max-resident must be at least 1, got \(count)") }
        if let bytes = options.maximumAdapterBytes, bytes < 1 { throw ServingError(.badRequest, "--max-memory must be positive") }
        let base = try SharedBase.load(model: model, progress: progress)
        self.base = base
        modelName = model
        if case .text = base.backbone { inputKind = .text } else { inputKind = .image }
        catalog = AdapterCatalog(adapters)
        self.options = options
        let thread = Thread { [unowned self] in self.runWorker() }
        thread.name = "peft-serve-worker"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Bytes of the base weights and of the pristine copy every switch restores from.
    public var baseBytes: Int { base.baseBytes }

    // MARK: Requests

    /// Classifies `inputs` with the adapter named `adapter`; returns the `topK` most probable classes per input.
    public func classify(adapter name: String, inputs: [ServingInput], topK: Int = 5) async throws -> [[ClassProbability]] {
        guard !inputs.isEmpty else { throw ServingError(.badRequest, "no input to classify") }
        guard topK >= 1 else { throw ServingError(.badRequest, "top_k must be at least 1, got \(topK)") }
        for input in inputs {
            switch (input, inputKind) {
            case (.image, .text): throw ServingError(.badRequest, "this server's base '\(modelName)' classifies texts; give \"text\", not \"image\"")
            case (.text, .image): throw ServingError(.badRequest, "this server's base '\(modelName)' classifies images; give \"image\", not \"text\"")
            default: break
            }
        }
        guard let entry = catalog.entry(named: name) else { throw ServingError(.notFound, "no adapter named '\(name)'") }
        return try await withCheckedThrowingContinuation { continuation in
            enqueue(.classify(Job(entry: entry, inputs: inputs, topK: topK, continuation: continuation)), orFail: continuation)
        }
    }

    /// Adds the adapter in `directory` under `name` (default: the directory's name), reads it and returns its status.
    /// Refused (nothing added) when the name is taken or the adapter cannot be served on this base.
    public func addAdapter(name: String?, directory: URL) async throws -> AdapterStatus {
        let entry = AdapterEntry(name: name ?? directory.standardizedFileURL.lastPathComponent, directory: directory)
        try catalog.add(entry)
        do {
            return try await onWorker(adapter: nil) { try self.ensureResident(entry).status }
        } catch {
            catalog.remove(named: entry.name)
            throw error
        }
    }

    /// Forgets the adapter named `name`; requests for it accepted before this call are answered first.
    public func removeAdapter(named name: String) async throws -> AdapterStatus {
        guard let entry = catalog.remove(named: name) else { throw ServingError(.notFound, "no adapter named '\(name)'") }
        return try await onWorker(adapter: name) {
            var status = self.resident[name]?.status ?? AdapterStatus(name: name, path: entry.directory.path, resident: false,
                                                                      active: false, bytes: 0, examples: 0)
            if let adapter = self.resident.removeValue(forKey: name) {
                if self.base.active === adapter { self.base.deactivate() }
            }
            status.resident = false
            self.publish()
            return status
        }
    }

    /// Reads every known adapter now (instead of on first use), as far as the resident limits allow.
    public func preload(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        let entries = catalog.all
        for (index, entry) in entries.enumerated() {
            _ = try await onWorker(adapter: nil) { try self.ensureResident(entry).status }
            if (index + 1) % 10 == 0 || index + 1 == entries.count { progress("loaded \(index + 1)/\(entries.count) adapters") }
        }
    }

    /// Every known adapter with what is known of it, sorted by name.
    public func adapterStatuses() -> [AdapterStatus] {
        let entries = catalog.all
        snapshotLock.lock(); defer { snapshotLock.unlock() }
        return entries.map { entry in
            if var status = residentStatus[entry.name] {
                status.examples = examplesServed[entry.name] ?? 0
                return status
            }
            return AdapterStatus(name: entry.name, path: entry.directory.path, resident: false, active: false, bytes: 0,
                                 examples: examplesServed[entry.name] ?? 0)
        }
    }

    /// Counts so far.
    public func currentStatistics() -> ServingStatistics {
        snapshotLock.lock(); defer { snapshotLock.unlock() }
        var copy = statistics
        condition.lock(); copy.queued = queue.count; condition.unlock()
        copy.tensorBytes = TensorMemory.liveBytes
        copy.pooledTensorBytes = TensorMemory.pooledBytes
        return copy
    }

    /// Whether the base weights, with no adapter active, are bit-identical to the loaded checkpoint. Takes the
    /// active adapter off first (the next request switches it back on).
    public func baseIsPristine() async throws -> Bool {
        try await onWorker(adapter: nil) {
            self.base.deactivate()
            self.publish()
            return self.base.isPristine
        }
    }

    /// Stops taking work, answers every request already accepted, and stops the worker.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            stopping = true
            if workerDone {
                condition.unlock()
                continuation.resume()
                return
            }
            stopped.append(continuation)
            condition.broadcast()
            condition.unlock()
        }
    }

    // MARK: Queue

    private func enqueue<T>(_ work: Work, orFail continuation: CheckedContinuation<T, any Error>) {
        condition.lock()
        if stopping {
            condition.unlock()
            continuation.resume(throwing: ServingError(.unavailable, "the server is shutting down"))
            return
        }
        if queue.count >= options.maximumQueued {
            condition.unlock()
            continuation.resume(throwing: ServingError(.unavailable, "\(options.maximumQueued) requests are already waiting; try again later"))
            return
        }
        queue.append(work)
        queueGauge.record(queue.count)
        condition.signal()
        condition.unlock()
    }

    /// Runs `body` on the worker thread (after the requests waiting for `adapter`, when given).
    private func onWorker<T: Sendable>(adapter: String?, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue(.task(adapter: adapter) {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }, orFail: continuation)
        }
    }

    private enum Next {
        case group(AdapterEntry, [Job])
        case task(@Sendable () -> Void)
    }

    /// The next thing to run (called with the lock held, queue not empty).
    private func takeNext() -> Next {
        switch queue[0] {
        case .task(let adapter, let body):
            if let adapter, let first = queue.firstIndex(where: { if case .classify(let job) = $0 { return job.entry.name == adapter } else { return false } }),
               case .classify(let job) = queue[first] {
                return .group(job.entry, takeJobs(for: job.entry))
            }
            queue.removeFirst()
            return .task(body)
        case .classify(let job):
            return .group(job.entry, takeJobs(for: job.entry))
        }
    }

    /// Removes and returns waiting jobs for `entry`, oldest first, up to `maximumBatch` examples (at least one job).
    private func takeJobs(for entry: AdapterEntry) -> [Job] {
        var taken: [Job] = [], examples = 0, kept: [Work] = []
        kept.reserveCapacity(queue.count)
        for work in queue {
            if case .classify(let job) = work, job.entry == entry,
               taken.isEmpty || examples + job.inputs.count <= options.maximumBatch {
                taken.append(job)
                examples += job.inputs.count
            } else {
                kept.append(work)
            }
        }
        queue = kept
        return taken
    }

    private func runWorker() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                workerDone = true
                let waiting = stopped
                stopped = []
                condition.unlock()
                base.deactivate()
                for continuation in waiting { continuation.resume() }
                return
            }
            let next = takeNext()
            queueGauge.record(queue.count)
            condition.unlock()
            switch next {
            case .task(let body): body()
            case .group(let entry, let jobs): serve(entry, jobs)
            }
        }
    }

    // MARK: Worker

    private func serve(_ entry: AdapterEntry, _ jobs: [Job]) {
        let adapter: ResidentAdapter
        do { adapter = try ensureResident(entry) } catch {
            for job in jobs { job.continuation.resume(throwing: error) }
            return
        }
        let examples = jobs.reduce(0) { $0 + $1.inputs.count }
        let mode = chooseMode(adapter, examples: examples)
        if base.active !== adapter || base.activeMode != mode {
            let start = DispatchTime.now().uptimeNanoseconds
            base.activate(adapter, mode: mode)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            switchTimer.recordSeconds(seconds)
            switchCounter.increment()
            snapshotLock.lock(); statistics.switches += 1; statistics.switchSeconds += seconds; snapshotLock.unlock()
        }
        let inputs = jobs.flatMap(\.inputs)
        let start = DispatchTime.now().uptimeNanoseconds
        var probabilities: [[Float]] = []
        do {
            var offset = 0
            while offset < inputs.count {
                let chunk = Array(inputs[offset..<min(offset + options.maximumBatch, inputs.count)])
                probabilities += try base.probabilities(adapter, inputs: chunk)
                offset += chunk.count
            }
        } catch {
            for job in jobs { job.continuation.resume(throwing: error) }
            return
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        forwardTimer.recordSeconds(seconds)
        exampleCounter.increment(by: examples)
        adapter.examples += examples
        // Counted before any answer goes out, so that a client that has its answer sees it in the statistics.
        snapshotLock.lock()
        statistics.requests += jobs.count
        statistics.examples += examples
        statistics.batches += 1
        statistics.forwardSeconds += seconds
        examplesServed[entry.name, default: 0] += examples
        snapshotLock.unlock()
        publish()
        var offset = 0
        for job in jobs {
            let rows = probabilities[offset..<(offset + job.inputs.count)].map { row in
                Prediction.top(job.topK, of: row).map {
                    ClassProbability(label: adapter.classNames[$0.classIndex], index: $0.classIndex, probability: $0.probability)
                }
            }
            offset += job.inputs.count
            job.continuation.resume(returning: Array(rows))
        }
    }

    /// The fused or unfused mode for serving `examples` examples with `adapter` now (see `SwitchPolicy`).
    private func chooseMode(_ adapter: ResidentAdapter, examples: Int) -> SwitchMode {
        guard adapter.isMergeable else { return .unfused }
        switch options.policy {
        case .fused: return .fused
        case .unfused: return .unfused
        case .auto:
            if adapter.isSparseExact { return .fused }
            if base.active === adapter, base.activeMode == .fused { return .fused }
            guard let switchCost = adapter.fusedSwitchSeconds, let overhead = adapter.unfusedOverheadSeconds else { return .fused }
            return switchCost < Double(examples) * overhead ? .fused : .unfused
        }
    }

    /// The resident adapter for `entry`, read from disk when it is not resident (evicting the least recently used
    /// ones beyond the limits).
    private func ensureResident(_ entry: AdapterEntry) throws -> ResidentAdapter {
        clock += 1
        if let adapter = resident[entry.name], adapter.entry == entry {
            adapter.lastUse = clock
            return adapter
        }
        let adapter = try base.load(entry)
        adapter.lastUse = clock
        if options.policy == .auto && options.measureCosts && adapter.isMergeable && !adapter.isSparseExact {
            let key = costKey(adapter)
            if let known = measuredCosts[key] {
                adapter.fusedSwitchSeconds = known.switchSeconds
                adapter.unfusedOverheadSeconds = known.overheadSeconds
            } else {
                measureCosts(adapter)
                if let switchSeconds = adapter.fusedSwitchSeconds, let overhead = adapter.unfusedOverheadSeconds {
                    measuredCosts[key] = (switchSeconds, overhead)
                }
            }
        }
        if let old = resident[entry.name], base.active === old { base.deactivate() }
        resident[entry.name] = adapter
        loadCounter.increment()
        snapshotLock.lock(); statistics.loads += 1; snapshotLock.unlock()
        evict(keeping: adapter)
        publish()
        return adapter
    }

    private func evict(keeping kept: ResidentAdapter) {
        func overLimit() -> Bool {
            if let count = options.maximumResident, resident.count > count { return true }
            if let bytes = options.maximumAdapterBytes, resident.values.reduce(0, { $0 + $1.bytes }) > bytes { return true }
            return false
        }
        while overLimit() {
            guard let victim = resident.values.filter({ $0 !== kept }).min(by: { $0.lastUse < $1.lastUse }) else { break }
            if base.active === victim { base.deactivate() }
            resident.removeValue(forKey: victim.entry.name)
            evictionCounter.increment()
            snapshotLock.lock(); statistics.evictions += 1; snapshotLock.unlock()
        }
    }

    /// What the costs of an adapter depend on: its method, and the shapes of its tensors on each adapted layer.
    private func costKey(_ adapter: ResidentAdapter) -> String {
        let layers = adapter.linear.map { entry in
            "\(entry.layer.outFeatures)x\(entry.layer.inFeatures):" + entry.adapter.namedParameters().map { "\($0.1.shape)" }.joined(separator: ",")
        }
        return adapter.method + "|" + layers.joined(separator: ";")
    }

    /// Times a fused switch (merge, then restore) and the forward of one probe example fused and unfused.
    /// The unfused overhead is a small difference of two large times, so each is the fastest of 5 runs, taken in
    /// alternation (fused, unfused, fused, ...) so that load from the HTTP threads falls on both alike; a median of
    /// 3 in two blocks let that noise make the overhead look larger than a switch and choose fused for one-example
    /// groups.
    private func measureCosts(_ adapter: ResidentAdapter) {
        let probe = [base.probeInput]
        func seconds(_ body: () -> Void) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        var switchCost = Double.infinity, fused = Double.infinity, unfused = Double.infinity
        base.activate(adapter, mode: .unfused)
        _ = try? base.probabilities(adapter, inputs: probe)  // first-use work (the lazily made buffers)
        for _ in 0..<5 {
            base.activate(adapter, mode: .unfused)
            unfused = min(unfused, seconds { _ = try? base.probabilities(adapter, inputs: probe) })
            base.deactivate()
            switchCost = min(switchCost, seconds {
                base.activate(adapter, mode: .fused)
                base.deactivate()
            })
            base.activate(adapter, mode: .fused)
            fused = min(fused, seconds { _ = try? base.probabilities(adapter, inputs: probe) })
            base.deactivate()
        }
        adapter.fusedSwitchSeconds = switchCost
        adapter.unfusedOverheadSeconds = max(0, unfused - fused)
    }

    /// Publishes the resident adapters' status (worker thread).
    private func publish() {
        var snapshot: [String: AdapterStatus] = [:]
        for (name, adapter) in resident {
            var status = adapter.status
            status.active = base.active === adapter
            snapshot[name] = status
        }
        residentGauge.record(resident.count)
        tensorBytesGauge.record(TensorMemory.liveBytes)
        snapshotLock.lock()
        residentStatus = snapshot
        snapshotLock.unlock()
    }
}
