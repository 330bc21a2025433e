import Engine
import Foundation
import Methods
import Models
import Serving
import Training
import XCTest

/// The server's defining properties: answers equal those of the adapter loaded on its own, whatever the order of
/// requests and the switching mode; the base is bit-identical after any sequence of switches; the resident set stays
/// within its bounds; adapters come and go while requests are in flight.
final class AdapterServerTests: XCTestCase {
    static let model = "vit-s16-random"
    static let side = 32
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("serving-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    /// Two adapters of each method kind that attaches something different to the base.
    func writeAdapters() throws -> [AdapterEntry] {
        var entries: [AdapterEntry] = []
        let methods: [(String, ConfigObject)] = [
            ("shira", ["density": 0.02, "target_modules": ["query", "value"]]),
            ("lora", ["r": 4, "target_modules": ["query", "value"]]),
            ("lora", ["r": 4, "use_dora": true, "target_modules": ["query", "value"]]),
            ("neat", [:]),
            ("rlrr", [:]),
            ("bitfit", [:]),
            ("layernorm", [:]),
            ("vpt", ["num_virtual_tokens": 2]),
            ("adapter", [:]),
        ]
        for (index, (method, config)) in methods.enumerated() {
            let prefix = config["use_dora"] == nil ? method : "dora"
            entries += try SyntheticAdapters.write(model: Self.model, method: method, config: config, count: 2,
                                                   classes: 3 + index % 3, resolution: Self.side, scale: 0.05,
                                                   seed: UInt64(10 * index), namePrefix: prefix, to: root)
        }
        return entries
    }

    func images(_ count: Int, seed: UInt64) -> [InputImage] {
        var generator = RandomGenerator(seed: seed)
        return (0..<count).map { i in
            let side = 20 + (i % 3) * 6
            return InputImage(name: "x\(i)", rows: side, columns: side,
                              planes: (0..<(3 * side * side)).map { _ in generator.nextUniform() })
        }
    }

    /// Probabilities of the adapter loaded on its own base, the way `peft predict` runs it.
    func reference(_ entry: AdapterEntry, _ inputs: [InputImage]) throws -> [[Float]] {
        let classifier = try AdapterEvaluation.model(from: entry.directory)
        let vision = try XCTUnwrap((classifier as? ImageClassifier)?.vision)
        return Prediction.probabilities(classifier, images: inputs,
                                        preprocessor: ImagePreprocessor(configuration: vision.configuration, resolution: Self.side))
    }

    func assertClose(_ served: [ClassProbability], _ expected: [Float], tolerance: Float, _ message: String) {
        XCTAssertEqual(served.count, min(expected.count, 5), message)
        for entry in served {
            XCTAssertEqual(entry.probability, expected[entry.index], accuracy: tolerance, message)
            XCTAssertEqual(entry.label, "class-\(entry.index)", message)
        }
        let best = expected.indices.max { expected[$0] < expected[$1] }
        XCTAssertEqual(served.first?.index, best, message)
    }

    func testEveryMethodAnswersAsOnItsOwnInEveryPolicyAndLeavesTheBaseExact() async throws {
        let entries = try writeAdapters()
        let inputs = images(3, seed: 1)
        var expected: [String: [[Float]]] = [:]
        for entry in entries { expected[entry.name] = try reference(entry, inputs) }
        for policy in SwitchPolicy.allCases {
            var options = ServingOptions()
            options.policy = policy
            let server = try AdapterServer(model: Self.model, adapters: entries, options: options)
            var order = entries + entries.reversed() + entries
            var generator = RandomGenerator(seed: 3)
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
            for entry in order {
                let served = try await server.classify(adapter: entry.name, inputs: inputs.map { .image($0) })
                for (row, answer) in served.enumerated() {
                    assertClose(answer, expected[entry.name]![row], tolerance: 2e-5, "\(entry.name) \(policy) image \(row)")
                }
            }
            let statistics = server.currentStatistics()
            XCTAssertGreaterThanOrEqual(statistics.switches, order.count / 2, "\(policy): requests alternate adapters, so the base switches")
            let pristine = try await server.baseIsPristine()
            XCTAssertTrue(pristine, "\(policy): after \(statistics.switches) switches the base weights must be bit-identical to the checkpoint")
            let statuses = server.adapterStatuses()
            XCTAssertEqual(statuses.count, entries.count)
            if policy == .fused {
                XCTAssertEqual(statuses.first { $0.name == "shira-0" }?.lastMode, .fused)
                XCTAssertEqual(statuses.first { $0.name == "vpt-0" }?.lastMode, .unfused, "prompts cannot be fused")
            }
            if policy == .auto {
                XCTAssertEqual(statuses.first { $0.name == "shira-0" }?.lastMode, .fused, "auto fuses sparse adapters")
                let lora = try XCTUnwrap(statuses.first { $0.name == "lora-0" })
                XCTAssertNotNil(lora.fusedSwitchMilliseconds, "auto measures a dense adapter's switch cost")
                XCTAssertNotNil(lora.unfusedOverheadMilliseconds)
                // Same method and shapes: timed once, the second adapter reuses the first's costs exactly.
                let twin = try XCTUnwrap(statuses.first { $0.name == "lora-1" })
                XCTAssertEqual(twin.fusedSwitchMilliseconds, lora.fusedSwitchMilliseconds)
                XCTAssertEqual(twin.unfusedOverheadMilliseconds, lora.unfusedOverheadMilliseconds)
                let dora = try XCTUnwrap(statuses.first { $0.name == "dora-0" })
                XCTAssertNotEqual(dora.fusedSwitchMilliseconds, lora.fusedSwitchMilliseconds, "DoRA's shapes differ: timed itself")
            }
            await server.shutdown()
        }
    }

    func testConcurrentClientsOnDifferentAdaptersGetTheSingleAdapterAnswers() async throws {
        let entries = try writeAdapters().filter { ["shira", "lora", "bitfit", "vpt"].contains($0.name.split(separator: "-")[0]) }
        let inputs = images(2, seed: 7)
        var expected: [String: [[Float]]] = [:]
        for entry in entries { expected[entry.name] = try reference(entry, inputs) }
        var options = ServingOptions()
        options.policy = .fused
        options.maximumBatch = 5
        let server = try AdapterServer(model: Self.model, adapters: entries, options: options)
        let answers = try await withThrowingTaskGroup(of: [(String, [[ClassProbability]])].self) { group in
            for client in 0..<12 {
                group.addTask {
                    var results: [(String, [[ClassProbability]])] = []
                    for request in 0..<6 {
                        let entry = entries[(client * 7 + request * 3) % entries.count]
                        results.append((entry.name, try await server.classify(adapter: entry.name, inputs: inputs.map { .image($0) })))
                    }
                    return results
                }
            }
            var all: [(String, [[ClassProbability]])] = []
            for try await answers in group { all += answers }
            return all
        }
        XCTAssertEqual(answers.count, 72)
        for (name, served) in answers {
            for (row, answer) in served.enumerated() {
                assertClose(answer, expected[name]![row], tolerance: 2e-5, "\(name) image \(row) under concurrent load")
            }
        }
        let statistics = server.currentStatistics()
        XCTAssertEqual(statistics.requests, 72)
        XCTAssertLessThan(statistics.batches, 72, "waiting requests for one adapter are grouped into shared batches")
        let pristine = try await server.baseIsPristine()
        XCTAssertTrue(pristine)
        await server.shutdown()
    }

    func testResidentSetStaysWithinItsLimitsAndEvictsTheLeastRecentlyUsed() async throws {
        let entries = try SyntheticAdapters.write(model: Self.model, method: "shira", config: ["density": 0.02, "target_modules": ["query", "value"]],
                                                  count: 6, resolution: Self.side, to: root)
        var options = ServingOptions()
        options.maximumResident = 2
        let server = try AdapterServer(model: Self.model, adapters: entries, options: options)
        let input = images(1, seed: 3).map { ServingInput.image($0) }
        for round in 0..<2 {
            for entry in entries {
                _ = try await server.classify(adapter: entry.name, inputs: input)
                let resident = server.adapterStatuses().filter(\.resident).map(\.name)
                XCTAssertLessThanOrEqual(resident.count, 2, "round \(round): \(resident)")
                XCTAssertTrue(resident.contains(entry.name), "the adapter just used is resident")
            }
        }
        // shira-4 then shira-5 were used last; using shira-4 again and loading shira-0 must evict shira-5.
        _ = try await server.classify(adapter: "shira-4", inputs: input)
        _ = try await server.classify(adapter: "shira-0", inputs: input)
        XCTAssertEqual(Set(server.adapterStatuses().filter(\.resident).map(\.name)), ["shira-4", "shira-0"])
        XCTAssertEqual(server.currentStatistics().loads, 13)
        XCTAssertEqual(server.currentStatistics().evictions, 11)

        // A byte limit of one adapter's size keeps one resident.
        let bytes = try XCTUnwrap(server.adapterStatuses().first { $0.resident }?.bytes)
        await server.shutdown()
        var byBytes = ServingOptions()
        byBytes.maximumAdapterBytes = bytes + bytes / 2
        let small = try AdapterServer(model: Self.model, adapters: entries, options: byBytes)
        for entry in entries { _ = try await small.classify(adapter: entry.name, inputs: input) }
        XCTAssertEqual(small.adapterStatuses().filter(\.resident).map(\.name), ["shira-5"])
        let pristine = try await small.baseIsPristine()
        XCTAssertTrue(pristine)
        await small.shutdown()
    }

    func testAdaptersComeAndGoWhileRequestsAreInFlight() async throws {
        let entries = try writeAdapters().filter { ["shira-0", "lora-0", "vpt-0"].contains($0.name) }
        let input = images(1, seed: 5)
        let server = try AdapterServer(model: Self.model, adapters: entries)
        let shira = try XCTUnwrap(entries.first { $0.name == "shira-0" })
        let expected = try reference(shira, input)
        // Requests for shira-0 queued before its removal are answered; later ones get "not found".
        let queued = (0..<8).map { _ in Task { try await server.classify(adapter: "shira-0", inputs: input.map { .image($0) }) } }
        try await Task.sleep(nanoseconds: 1_000_000)
        let removed = try await server.removeAdapter(named: "shira-0")
        XCTAssertFalse(removed.resident)
        var answered = 0
        for task in queued {
            do {
                let answer = try await task.value
                assertClose(answer[0], expected[0], tolerance: 2e-5, "request accepted before the removal")
                answered += 1
            } catch let error as ServingError {
                XCTAssertEqual(error.kind, .notFound, "only requests made after the removal fail, as not found")
            }
        }
        XCTAssertGreaterThan(answered, 0)
        do {
            _ = try await server.classify(adapter: "shira-0", inputs: input.map { .image($0) })
            XCTFail("a removed adapter still answers")
        } catch let error as ServingError { XCTAssertEqual(error.kind, .notFound) }

        // Add it back under another name while other clients keep the worker busy; a taken name is refused.
        let traffic = Task {
            for _ in 0..<10 { _ = try await server.classify(adapter: "lora-0", inputs: input.map { .image($0) }) }
        }
        let status = try await server.addAdapter(name: "again/shira", directory: shira.directory)
        XCTAssertTrue(status.resident)
        XCTAssertEqual(status.method, "shira")
        let again = try await server.classify(adapter: "again/shira", inputs: input.map { .image($0) })
        assertClose(again[0], expected[0], tolerance: 2e-5, "re-added adapter")
        do {
            _ = try await server.addAdapter(name: "lora-0", directory: shira.directory)
            XCTFail("a taken name was accepted")
        } catch let error as ServingError { XCTAssertEqual(error.kind, .conflict) }
        do {
            _ = try await server.addAdapter(name: "broken", directory: root.appendingPathComponent("nowhere"))
            XCTFail("a missing folder was accepted")
        } catch let error as ServingError {
            XCTAssertEqual(error.kind, .unprocessable)
            XCTAssertNil(server.catalog.entry(named: "broken"), "a refused adapter is not left in the catalog")
        }
        try await traffic.value
        let pristine = try await server.baseIsPristine()
        XCTAssertTrue(pristine)
        await server.shutdown()
        do {
            _ = try await server.classify(adapter: "lora-0", inputs: input.map { .image($0) })
            XCTFail("a stopped server still answers")
        } catch let error as ServingError { XCTAssertEqual(error.kind, .unavailable) }
    }

    func testDiscoveryNamesAdaptersByTheirPath() throws {
        let entries = try SyntheticAdapters.write(model: Self.model, method: "bitfit", count: 1, resolution: Self.side, to: root)
        let source = try XCTUnwrap(entries.first).directory
        let manager = FileManager.default
        for path in ["runs/a/adapter", "team/b", "c"] {
            let target = root.appendingPathComponent("tree").appendingPathComponent(path)
            try manager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try manager.copyItem(at: source, to: target)
        }
        try manager.createDirectory(at: root.appendingPathComponent("tree/empty/deeper"), withIntermediateDirectories: true)
        let found = try AdapterCatalog.discover(in: root.appendingPathComponent("tree"))
        XCTAssertEqual(found.map(\.name), ["c", "runs/a", "team/b"])
        XCTAssertThrowsError(try AdapterCatalog.discover(in: root.appendingPathComponent("missing"))) { error in
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
        let catalog = AdapterCatalog(found)
        XCTAssertThrowsError(try catalog.add(AdapterEntry(name: "c", directory: source)))
        XCTAssertThrowsError(try catalog.add(AdapterEntry(name: "bad name!", directory: source)))
    }
}
