import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Training
import XCTest

/// A `peft serve` process on a free loopback port, talked to with a real HTTP client (URLSession).
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    private let errorPipe = Pipe()
    private final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var data = Data()
    }
    private let collected = Collected()

    init(_ arguments: [String]) throws {
        process.executableURL = PeftProcess.binary
        process.arguments = ["serve", "--port", "0"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errorPipe
        process.standardInput = FileHandle.nullDevice
        let collected = self.collected
        errorPipe.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            collected.lock.lock(); collected.data.append(chunk); collected.lock.unlock()
        }
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(120)
        while !text.contains("\n"), Date() < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://127.0.0.1:") }),
              let port = Int(line.split(separator: ":").last ?? "") else {
            process.terminate()
            process.waitUntilExit()
            throw NSError(domain: "ServeProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "peft serve did not start: stdout '\(text)'"])
        }
        self.port = port
    }

    var stderr: String {
        collected.lock.lock(); defer { collected.lock.unlock() }
        return String(decoding: collected.data, as: UTF8.self)
    }

    /// SIGTERM and the exit status (waits at most `timeout` seconds, then kills).
    func terminate(timeout: TimeInterval = 60) -> (status: Int32, signalled: Bool) {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal)
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    struct Reply {
        var status: Int
        var body: Data
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
        var error: String { json["error"] as? String ?? "(no error field in \(String(decoding: body.prefix(300), as: UTF8.self)))" }
    }

    func request(_ method: String, _ path: String, body: Data? = nil) async throws -> Reply {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 120
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return Reply(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data)
    }

    func post(_ path: String, _ object: [String: Any]) async throws -> Reply {
        try await request("POST", path, body: try JSONSerialization.data(withJSONObject: object))
    }
}

/// `peft serve` end to end: real adapters trained by `peft train`, a real server process, a real HTTP client.
final class ServeCommandTests: XCTestCase {
    /// Two quick runs (LoRA and SHiRA) under one folder: adapters named "lora-run" and "shira-run".
    func trainedAdapters() throws -> URL {
        let root = temporaryDirectory("peft-serve", for: self)
        for method in ["lora", "shira"] {
            assertSuccess(try PeftProcess.run(quickTrain(out: root.appendingPathComponent("\(method)-run"), method: method), timeout: 300))
        }
        return root
    }

    func pngBase64(seed: Int, side: Int = 40) throws -> (String, URL) {
        var state = UInt64(seed) &* 6364136223846793005 &+ 1
        let rgb = (0..<(side * side * 3)).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let bytes = try PNGImage.encode(width: side, height: side, rgb: rgb)
        let file = temporaryDirectory("peft-serve-png", for: self).appendingPathComponent("image-\(seed).png")
        try Data(bytes).write(to: file)
        return (Data(bytes).base64EncodedString(), file)
    }

    /// `peft predict`'s top-5 for `image` with the adapter in `directory`: [(label, probability)].
    func predicted(_ directory: URL, _ image: URL) throws -> [(String, Double)] {
        let outcome = try PeftProcess.run(["predict", "--model", "vit-s16-random", "--adapter", directory.path, image.path])
        assertSuccess(outcome)
        let line = try XCTUnwrap(outcome.stdout.split(separator: "\n").first)
        let list = line[line.index(after: try XCTUnwrap(line.firstIndex(of: ":")))...]
        return list.split(separator: "|").map { item in
            let parts = item.trimmingCharacters(in: .whitespaces).split(separator: " ")
            return (parts.dropLast().joined(separator: " "), Double(parts.last ?? "") ?? -1)
        }
    }

    func predictions(_ reply: ServeProcess.Reply) -> [[(String, Double)]] {
        (reply.json["predictions"] as? [[[String: Any]]] ?? []).map { row in
            row.map { ($0["label"] as? String ?? "?", ($0["probability"] as? NSNumber)?.doubleValue ?? -1) }
        }
    }

    func assertSame(_ served: [(String, Double)], _ expected: [(String, Double)], _ what: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(served.map(\.0), expected.map(\.0), what, file: file, line: line)
        for (a, b) in zip(served, expected) { XCTAssertEqual(a.1, b.1, accuracy: 2e-4, what, file: file, line: line) }
    }

    func testEveryEndpointAgainstPredictAndEveryBadRequest() async throws {
        let root = try trainedAdapters()
        let server = try ServeProcess(["--model", "vit-s16-random", "--adapters", root.path, "--max-body-mb", "1"])
        defer { _ = server.terminate() }

        let health = try await server.request("GET", "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json["model"] as? String, "vit-s16-random")
        XCTAssertEqual(health.json["adapters"] as? Int, 2)

        let list = try await server.request("GET", "/v1/adapters")
        XCTAssertEqual(list.status, 200)
        let names = (list.json["adapters"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(names, ["lora-run", "shira-run"])

        // Answers equal `peft predict`'s for the same adapter and image, for both adapters, batch and single.
        let (first, firstFile) = try pngBase64(seed: 1), (second, secondFile) = try pngBase64(seed: 2)
        for name in ["lora-run", "shira-run"] {
            let directory = root.appendingPathComponent(name).appendingPathComponent("adapter")
            let single = try await server.post("/v1/classify", ["adapter": name, "image": first])
            XCTAssertEqual(single.status, 200, single.error)
            let batch = try await server.post("/v1/classify", ["adapter": name, "inputs": [["image": first], ["image": "data:image/png;base64," + second]], "top_k": 5])
            XCTAssertEqual(batch.status, 200, batch.error)
            let expectedFirst = try predicted(directory, firstFile), expectedSecond = try predicted(directory, secondFile)
            assertSame(try XCTUnwrap(predictions(single).first), expectedFirst, "\(name) single")
            XCTAssertEqual(predictions(batch).count, 2)
            assertSame(predictions(batch)[0], expectedFirst, "\(name) batch[0]")
            assertSame(predictions(batch)[1], expectedSecond, "\(name) batch[1]")
        }

        // A JPEG (made by Pillow) is read too, and answered as `peft predict` answers for the file.
        let jpegFile = JPEGInputTests.fixtures.appendingPathComponent("rgb-420-baseline.jpg")
        let jpeg = try await server.post("/v1/classify", ["adapter": "shira-run", "image": try Data(contentsOf: jpegFile).base64EncodedString()])
        XCTAssertEqual(jpeg.status, 200, jpeg.error)
        assertSame(try XCTUnwrap(predictions(jpeg).first), try predicted(root.appendingPathComponent("shira-run/adapter"), jpegFile), "JPEG")

        // Bad requests: a clear JSON error and the right status, never a crash.
        func expect(_ reply: ServeProcess.Reply, _ status: Int, mentions text: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(reply.status, status, reply.error, file: file, line: line)
            XCTAssertTrue(reply.error.contains(text), "expected '\(text)' in '\(reply.error)'", file: file, line: line)
        }
        expect(try await server.request("POST", "/v1/classify", body: Data("{\"adapter\": ".utf8)), 400, mentions: "not valid JSON")
        expect(try await server.request("POST", "/v1/classify", body: Data()), 400, mentions: "empty")
        expect(try await server.post("/v1/classify", ["adapter": 3, "image": first]), 400, mentions: "'adapter' must be a string")
        expect(try await server.post("/v1/classify", ["image": first]), 400, mentions: "'adapter' is missing")
        expect(try await server.post("/v1/classify", ["adapter": "lora-run", "inputs": "x"]), 400, mentions: "'inputs' must be an array")
        expect(try await server.post("/v1/classify", ["adapter": "lora-run", "image": first, "top_k": 0]), 400, mentions: "top_k")
        expect(try await server.post("/v1/classify", ["adapter": "lora-run"]), 400, mentions: "nothing to classify")
        expect(try await server.post("/v1/classify", ["adapter": "lora-run", "image": "%%%"]), 400, mentions: "not base64")
        expect(try await server.post("/v1/classify", ["adapter": "lora-run", "image": Data("GIF89a not a png".utf8).base64EncodedString()]), 400,
               mentions: "not an image")
        var truncated = try XCTUnwrap(Data(base64Encoded: first))
        truncated = truncated.prefix(truncated.count / 2)
        expect(try await server.post("/v1/classify", ["adapter": "lora-run", "image": truncated.base64EncodedString()]), 400, mentions: "PNG")
        expect(try await server.post("/v1/classify", ["adapter": "lora-run", "text": "a sentence"]), 400, mentions: "classifies images")
        expect(try await server.post("/v1/classify", ["adapter": "nope", "image": first]), 404, mentions: "no adapter named 'nope'")
        let huge = try JSONSerialization.data(withJSONObject: ["adapter": "lora-run", "image": String(repeating: "A", count: 2 << 20)])
        expect(try await server.request("POST", "/v1/classify", body: huge), 413, mentions: "exceeds")
        expect(try await server.request("DELETE", "/v1/adapters/nope"), 404, mentions: "no adapter named 'nope'")
        expect(try await server.post("/v1/adapters", ["path": root.appendingPathComponent("missing").path]), 422, mentions: "missing")
        expect(try await server.post("/v1/adapters", ["path": root.appendingPathComponent("lora-run/adapter").path, "name": "lora-run"]), 409,
               mentions: "lora-run")
        expect(try await server.post("/v1/adapters", ["path": 7]), 400, mentions: "'path' must be a string")

        // Load by path while serving, use it, delete it.
        let added = try await server.post("/v1/adapters", ["path": root.appendingPathComponent("shira-run/adapter").path, "name": "extra/shira"])
        XCTAssertEqual(added.status, 201, added.error)
        XCTAssertEqual(added.json["method"] as? String, "shira")
        let extra = try await server.post("/v1/classify", ["adapter": "extra/shira", "image": first])
        XCTAssertEqual(extra.status, 200, extra.error)
        assertSame(try XCTUnwrap(predictions(extra).first), try predicted(root.appendingPathComponent("shira-run/adapter"), firstFile), "added adapter")
        let removed = try await server.request("DELETE", "/v1/adapters/extra/shira")
        XCTAssertEqual(removed.status, 200, removed.error)
        expect(try await server.post("/v1/classify", ["adapter": "extra/shira", "image": first]), 404, mentions: "extra/shira")

        let metrics = try await server.request("GET", "/metrics")
        XCTAssertEqual(metrics.status, 200)
        let text = String(decoding: metrics.body, as: UTF8.self)
        for name in ["peft_examples_total", "peft_switches_total", "peft_http_requests_total", "peft_resident_adapters"] {
            XCTAssertTrue(text.contains(name), "no \(name) in /metrics")
        }
        let outcome = server.terminate()
        XCTAssertFalse(outcome.signalled, server.stderr)
        XCTAssertEqual(outcome.status, 0, server.stderr)
    }

    /// Many concurrent clients on different adapters all get the single-adapter answer; SIGTERM while requests are
    /// in flight answers every one of them and exits 0.
    func testConcurrentClientsAndSIGTERMDrains() async throws {
        let root = try trainedAdapters()
        let server = try ServeProcess(["--model", "vit-s16-random", "--adapters", root.path, "--max-batch", "4"])
        defer { _ = server.terminate() }
        let (image, _) = try pngBase64(seed: 3)
        var expected: [String: [(String, Double)]] = [:]
        for name in ["lora-run", "shira-run"] {
            let reply = try await server.post("/v1/classify", ["adapter": name, "image": image, "top_k": 10])
            XCTAssertEqual(reply.status, 200, reply.error)
            expected[name] = predictions(reply).first
        }
        let lora = try XCTUnwrap(expected["lora-run"]), shira = try XCTUnwrap(expected["shira-run"])
        XCTAssertGreaterThan(zip(lora, shira).map { abs($0.1 - $1.1) }.max() ?? 0, 1e-3, "the two adapters should answer differently")
        let plan = (0..<48).map { $0 % 3 == 0 ? "shira-run" : "lora-run" }
        let replies = try await withThrowingTaskGroup(of: (String, ServeProcess.Reply).self) { group in
            for name in plan { group.addTask { (name, try await server.post("/v1/classify", ["adapter": name, "image": image, "top_k": 10])) } }
            var all: [(String, ServeProcess.Reply)] = []
            for try await reply in group { all.append(reply) }
            return all
        }
        for (name, reply) in replies {
            XCTAssertEqual(reply.status, 200, reply.error)
            // Batched with other requests, the numbers differ from batch 1 only by float32 summation order.
            let served = try XCTUnwrap(predictions(reply).first)
            XCTAssertEqual(served.map(\.0), expected[name]?.map(\.0), "\(name) answered differently under concurrent load")
            for (a, b) in zip(served, expected[name] ?? []) { XCTAssertEqual(a.1, b.1, accuracy: 2e-5, "\(name) under concurrent load") }
        }
        let health = try await server.request("GET", "/health")
        let statistics = try XCTUnwrap(health.json["statistics"] as? [String: Any])
        XCTAssertLessThan(try XCTUnwrap(statistics["batches"] as? Int), 50, "requests were grouped into batches")

        // SIGTERM with requests in flight: every accepted request is answered, then exit 0.
        let inFlight = Task {
            await withTaskGroup(of: Result<Int, any Error>.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        do { return .success(try await server.post("/v1/classify", ["adapter": index % 2 == 0 ? "lora-run" : "shira-run", "image": image]).status) }
                        catch { return .failure(error) }
                    }
                }
                var outcomes: [Result<Int, any Error>] = []
                for await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
        }
        // Wait until the server holds requests, then stop it.
        var queued = 0
        for _ in 0..<400 where queued == 0 {
            let metrics = try await server.request("GET", "/health")
            queued = (metrics.json["statistics"] as? [String: Any])?["queued"] as? Int ?? 0
            if queued == 0 { try await Task.sleep(nanoseconds: 2_000_000) }
        }
        XCTAssertGreaterThan(queued, 0, "no request was waiting when SIGTERM was sent")
        let outcome = server.terminate()
        let outcomes = await inFlight.value
        XCTAssertEqual(outcomes.count, 16)
        var answered = 0
        for result in outcomes {
            switch result {
            case .success(let status):
                XCTAssertEqual(status, 200, "a request accepted before SIGTERM was not answered with 200; \(server.stderr)")
                answered += 1
            case .failure(let error):
                // Only requests that never got in (the listener had closed) may fail, and only to connect.
                XCTAssertEqual((error as? URLError)?.code, .cannotConnectToHost, "request lost during the drain: \(error)")
            }
        }
        XCTAssertGreaterThanOrEqual(answered, queued, "every request waiting at SIGTERM is answered")
        XCTAssertFalse(outcome.signalled, server.stderr)
        XCTAssertEqual(outcome.status, 0, server.stderr)
    }
}
