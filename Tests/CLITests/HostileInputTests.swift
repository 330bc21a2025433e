import Checkpoints
import Engine
import Foundation
import XCTest

/// Hostile inputs to the command-line tool: each must end in a clear error naming the file or option, never a
/// crash, a hang, a huge allocation or a wrong answer with exit 0 (RELIABILITY.md section 5).
final class HostileInputTests: XCTestCase {
    /// One finished quick run shared by the tests of this class (an adapter to break in different ways).
    static let run: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-run-\(UUID().uuidString)")
        _ = try? PeftProcess.run(quickTrain(out: url, epochs: 1))
        return url
    }()

    override class func tearDown() { try? FileManager.default.removeItem(at: run) }

    var adapter: URL { Self.run.appendingPathComponent("adapter") }

    /// A copy of the shared adapter, for editing.
    func adapterCopy() throws -> URL {
        let copy = temporaryDirectory("adapter-copy", for: self).appendingPathComponent("adapter")
        try FileManager.default.copyItem(at: adapter, to: copy)
        return copy
    }

    func image(in folder: URL) throws -> URL {
        let url = folder.appendingPathComponent("one.idx")
        try Data([0, 0, 8, 2, 0, 0, 0, 28, 0, 0, 0, 28] + [UInt8](repeating: 90, count: 784)).write(to: url)
        return url
    }

    func testResolutionOutOfRangeIsRefused() throws {
        let out = temporaryDirectory("resolution", for: self)
        for value in ["-32", "0", "20", "160000"] {
            let outcome = try PeftProcess.run(quickTrain(out: out.appendingPathComponent(value), epochs: 1, ["--resolution", value]), timeout: 30)
            assertCleanFailure(outcome, mentions: "resolution \(value) is not usable")
        }
        let picture = try image(in: out)
        for value in ["-16", "20000"] {
            let outcome = try PeftProcess.run(["predict", "--adapter", adapter.path, "--resolution", value, picture.path], timeout: 30)
            assertCleanFailure(outcome, mentions: "--resolution \(value) is outside")
        }
        let odd = try PeftProcess.run(["predict", "--adapter", adapter.path, "--resolution", "20", picture.path], timeout: 30)
        assertCleanFailure(odd, mentions: "resolution 20 is not usable")
    }

    func testAdapterConfigWithImpossibleClassesIsRefusedByEveryCommand() throws {
        let folder = temporaryDirectory("classes", for: self)
        let picture = try image(in: folder)
        let cases: [((inout [String: Any]) -> Void, String)] = [
            ({ $0["classes"] = -1 }, "'swiftpeft.classes' is -1"),
            ({ $0["classes"] = 1_000_000_000 }, "'swiftpeft.classes' is 1000000000"),
            ({ $0["classNames"] = ["a", "b"] }, "'swiftpeft.classNames' has 2 names for 10 classes"),
        ]
        for (edit, message) in cases {
            let copy = try adapterCopy()
            try editJSON(copy.appendingPathComponent("adapter_config.json")) { config in
                var details = config["swiftpeft"] as! [String: Any]
                edit(&details)
                config["swiftpeft"] = details
            }
            assertCleanFailure(try PeftProcess.run(["predict", "--adapter", copy.path, picture.path], timeout: 30), mentions: message)
            assertCleanFailure(try PeftProcess.run(["merge", copy.path, "--out", folder.appendingPathComponent("m.safetensors").path], timeout: 30), mentions: message)
            assertCleanFailure(try PeftProcess.run(["eval-adapter", copy.path, "--task", "digits-1k", "--max-eval", "16"], timeout: 30), mentions: message)
        }
    }

    func testMistypedNumbersInAConfigNameTheKey() throws {
        for (key, value) in [("r", 4.5), ("seed", -1.0)] {
            let copy = try adapterCopy()
            try editJSON(copy.appendingPathComponent("adapter_config.json")) { config in
                var details = config["swiftpeft"] as! [String: Any]
                var methodConfig = details["config"] as! [String: Any]
                methodConfig[key] = value
                details["config"] = methodConfig
                config["swiftpeft"] = details
                config.removeValue(forKey: key)  // the top-level peft field would override it
            }
            let outcome = try PeftProcess.run(["merge", copy.path, "--out", copy.appendingPathComponent("../m.safetensors").path], timeout: 30)
            assertCleanFailure(outcome, mentions: "'\(key)'")
            XCTAssertFalse(outcome.stderr.contains("not valid JSON"), outcome.stderr)
        }
    }

    func testUnreadableOrSpecialFilesAreNamedNotMissing() throws {
        let folder = temporaryDirectory("special", for: self)
        // A config that is a directory cannot be read: the error says so instead of "missing".
        let copy = try adapterCopy()
        try FileManager.default.removeItem(at: copy.appendingPathComponent("adapter_config.json"))
        try FileManager.default.createDirectory(at: copy.appendingPathComponent("adapter_config.json"), withIntermediateDirectories: false)
        assertCleanFailure(try PeftProcess.run(["merge", copy.path, "--out", folder.appendingPathComponent("m.safetensors").path], timeout: 30),
                           mentions: "is a directory")
        // A FIFO in place of the weights: refused at once (it used to block in open forever).
        let fifo = try adapterCopy()
        let weights = fifo.appendingPathComponent("adapter_model.safetensors")
        try FileManager.default.removeItem(at: weights)
        XCTAssertEqual(mkfifo(weights.path, 0o644), 0)
        assertCleanFailure(try PeftProcess.run(["merge", fifo.path, "--out", folder.appendingPathComponent("m2.safetensors").path], timeout: 30),
                           mentions: "not a regular file")
        // A device as an image.
        assertCleanFailure(try PeftProcess.run(["predict", "--adapter", adapter.path, "/dev/zero"], timeout: 30),
                           mentions: "/dev/zero: is not a regular file")
    }

    func testNonFiniteWeightsAreRefusedNamingFileAndTensor() throws {
        let folder = temporaryDirectory("nan", for: self)
        let picture = try image(in: folder)
        let copy = try adapterCopy()
        let weights = copy.appendingPathComponent("adapter_model.safetensors")
        var poisoned = ""
        try rewriteSafeTensors(weights) { floats, _, _ in
            poisoned = floats.keys.sorted().first { $0.contains("lora_A") }!
            floats[poisoned]!.data[3] = .nan
        }
        for arguments in [["predict", "--adapter", copy.path, picture.path],
                          ["merge", copy.path, "--out", folder.appendingPathComponent("m.safetensors").path],
                          ["eval-adapter", copy.path, "--task", "digits-1k", "--max-eval", "16"]] {
            let outcome = try PeftProcess.run(arguments, timeout: 30)
            assertCleanFailure(outcome, mentions: "tensor '\(poisoned)': element 3 of")
            XCTAssertTrue(outcome.stderr.contains(weights.path), outcome.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("m.safetensors").path), "no merged model of NaNs")
        // A NaN best.safetensors for eval, and a NaN checkpoint for --resume.
        let run = temporaryDirectory("nan-run", for: self)
        assertSuccess(try PeftProcess.run(quickTrain(out: run, epochs: 1)))
        try rewriteSafeTensors(run.appendingPathComponent("best.safetensors")) { floats, _, _ in floats[floats.keys.sorted()[0]]!.data[0] = .infinity }
        assertCleanFailure(try PeftProcess.run(["eval", run.path], timeout: 30), mentions: "best.safetensors: tensor")
        try rewriteSafeTensors(run.appendingPathComponent("checkpoint.safetensors")) { floats, _, _ in
            floats[floats.keys.sorted().first { $0.hasPrefix("param.") }!]!.data[0] = .nan
        }
        let resumed = try PeftProcess.run(quickTrain(out: run, epochs: 2, ["--resume"]), timeout: 30)
        assertCleanFailure(resumed, mentions: "checkpoint.safetensors: tensor 'param.")
        XCTAssertFalse(resumed.stderr.contains("learning rate"), "the message blames the file, not the learning rate: \(resumed.stderr)")
    }

    func testDegenerateImagesAreRefused() throws {
        let folder = temporaryDirectory("images", for: self)
        let empty = folder.appendingPathComponent("empty.idx")
        try Data([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 28]).write(to: empty)
        assertCleanFailure(try PeftProcess.run(["predict", "--adapter", adapter.path, empty.path], timeout: 30),
                           mentions: "IDX dimensions [3, 0, 28] hold a zero")
        // A PNG whose header claims 16384 x 16384 pixels: refused from the header, before decoding.
        let huge = folder.appendingPathComponent("huge.png")
        try Data(PNGBytes.header(width: 16384, height: 16384)).write(to: huge)
        let outcome = try PeftProcess.run(["predict", "--adapter", adapter.path, huge.path], timeout: 20)
        assertCleanFailure(outcome, mentions: "PNG size 16384 x 16384 is outside 1...4096")
    }

    func testPredictAndEvalOptionsAreChecked() throws {
        let folder = temporaryDirectory("predict-options", for: self)
        let picture = try image(in: folder)
        assertCleanFailure(try PeftProcess.run(["predict", "--adapter", adapter.path, "--top-k", "0", picture.path], timeout: 30),
                           mentions: "--top-k must be at least 1")
        assertCleanFailure(try PeftProcess.run(["predict", "--adapter", adapter.path, "--task", "bogus", picture.path], timeout: 30),
                           mentions: "unknown task 'bogus'")
        assertCleanFailure(try PeftProcess.run(["eval-adapter", adapter.path, "--task", "digits-1k", "--max-eval", "0"], timeout: 30),
                           mentions: "--max-eval must be at least 1")
    }

    func testShiraMaskPartThatOverflowsIsRefused() throws {
        let out = temporaryDirectory("mask-part", for: self)
        let outcome = try PeftProcess.run(quickTrain(out: out, method: "shira", epochs: 1, ["--option", "mask_part=4611686018427387904"]), timeout: 30)
        assertCleanFailure(outcome, mentions: "SHiRA mask part 4611686018427387904 needs more than")
    }

    func testImportAndFuseNeverWriteOverTheirInputs() throws {
        let folder = temporaryDirectory("import-inputs", for: self)
        let onnx = folder.appendingPathComponent("model.onnx")
        try Data("not read".utf8).write(to: onnx)
        assertCleanFailure(try PeftProcess.run(["import", "--onnx", onnx.path, "--out", onnx.path], timeout: 30),
                           mentions: "which this command reads")
        XCTAssertEqual(try Data(contentsOf: onnx), Data("not read".utf8))
        let copy = try adapterCopy()
        assertCleanFailure(try PeftProcess.run(["fuse", adapter.path, copy.path, "--out", copy.path], timeout: 30),
                           mentions: "which this command reads")
        XCTAssertNoThrow(try Data(contentsOf: copy.appendingPathComponent("adapter_model.safetensors")))
    }

    func testMergeNeverWritesOverItsInputs() throws {
        let folder = temporaryDirectory("merge-inputs", for: self)
        // The adapter's own weights.
        let copy = try adapterCopy()
        let weights = copy.appendingPathComponent("adapter_model.safetensors")
        let before = try Data(contentsOf: weights)
        assertCleanFailure(try PeftProcess.run(["merge", copy.path, "--out", weights.path], timeout: 30), mentions: "which this command reads")
        XCTAssertEqual(try Data(contentsOf: weights), before)
        // The base model's file, in an assets folder of symbolic links to the real files (so that a failure of
        // this test could only replace a link, never the real weights). Without a converted DINOv2 file yet, the
        // first run imports one into the temporary folder.
        let realAssets = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("assets")
        let assets = folder.appendingPathComponent("assets")
        try FileManager.default.createDirectory(at: assets.appendingPathComponent("dinov2"), withIntermediateDirectories: true)
        for entry in try FileManager.default.contentsOfDirectory(atPath: realAssets.path) where entry != "dinov2" {
            try FileManager.default.createSymbolicLink(at: assets.appendingPathComponent(entry),
                                                       withDestinationURL: realAssets.appendingPathComponent(entry))
        }
        for name in ["dinov2-s14.safetensors", "vit_s_focus.onnx"] {
            let real = realAssets.appendingPathComponent("dinov2/\(name)")
            guard FileManager.default.fileExists(atPath: real.path) else { continue }
            try FileManager.default.createSymbolicLink(at: assets.appendingPathComponent("dinov2/\(name)"), withDestinationURL: real)
        }
        let env = ["PEFT_ASSETS": assets.path]
        let run = folder.appendingPathComponent("run")
        let trained = try PeftProcess.run(["train", "--model", "dinov2-s14", "--task", "digits-1k", "--method", "lora", "--rank", "2",
                                           "--resolution", "28", "--batch-size", "16", "--epochs", "1", "--max-steps", "1",
                                           "--max-eval", "16", "--out", run.path], environment: env, timeout: 180)
        assertSuccess(trained)
        let target = assets.appendingPathComponent("dinov2/dinov2-s14.safetensors")
        let resolved = target.resolvingSymlinksInPath()
        let baseBefore = try Data(contentsOf: resolved).prefix(1 << 20)
        let dateBefore = try FileManager.default.attributesOfItem(atPath: resolved.path)[.modificationDate] as? Date
        let outcome = try PeftProcess.run(["merge", run.appendingPathComponent("adapter").path, "--out", target.path], environment: env, timeout: 60)
        assertCleanFailure(outcome, mentions: "which this command reads")
        XCTAssertEqual(target.resolvingSymlinksInPath().path, resolved.path, "the file (or link) is untouched")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: resolved.path)[.modificationDate] as? Date, dateBefore)
        XCTAssertEqual(try Data(contentsOf: resolved).prefix(1 << 20), baseBefore)
        // Also through another spelling of the same path.
        let dotted = assets.appendingPathComponent("dinov2/../dinov2/dinov2-s14.safetensors").path
        assertCleanFailure(try PeftProcess.run(["merge", run.appendingPathComponent("adapter").path, "--out", dotted], environment: env, timeout: 60),
                           mentions: "which this command reads")
    }
}

/// Hand-made PNG bytes: signature, IHDR, a one-byte IDAT and IEND, with correct CRCs.
enum PNGBytes {
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    static func header(width: UInt32, height: UInt32) -> [UInt8] {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let ihdr = bigEndian(width) + bigEndian(height) + [8, 0, 0, 0, 0]  // 8-bit grey
        return signature + chunk("IHDR", ihdr) + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", [])
    }
}
