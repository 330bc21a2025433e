import Foundation
import Training
import XCTest

/// `peft train --data FOLDER` on a folder of the user's own images, end to end: PNG and JPEG files of any size in
/// one folder per class, a seeded split or explicit train/validation/test folders, class names carried into the
/// adapter so `peft predict` prints them, and the refusals a bad folder gets.
final class ImageFolderTests: XCTestCase {
    static let jpegFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/jpeg")

    /// A PNG of `rows` x `columns` whose top (class "top") or bottom (class "bottom") half is bright, with noise.
    func stripes(top: Bool, rows: Int, columns: Int, seed: Int) throws -> [UInt8] {
        var state = UInt64(seed) &* 6364136223846793005 &+ 1
        var rgb: [UInt8] = []
        for y in 0..<rows {
            for _ in 0..<columns {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let bright = (y < rows / 2) == top
                let value = Int(bright ? 200 : 50) + Int(state >> 59) - 16
                rgb += [UInt8(max(0, min(255, value))), UInt8(max(0, min(255, value - 10))), UInt8(max(0, min(255, value + 10)))]
            }
        }
        return try PNGImage.encode(width: columns, height: rows, rgb: rgb)
    }

    /// Classes "top" and "bottom" (PNG, sizes 20-40 px) and "photo" (the committed JPEG fixtures, baseline and
    /// progressive, grey and colour), `perClass` images each, under `root` (or `root/<split>`).
    func makeFolder(_ root: URL, perClass: Int = 12, classes: [String] = ["bottom", "photo", "top"]) throws {
        let jpegs = try FileManager.default.contentsOfDirectory(atPath: Self.jpegFixtures.path).filter { $0.hasSuffix(".jpg") }.sorted()
        XCTAssertGreaterThanOrEqual(jpegs.count, 3)
        for name in classes {
            let folder = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for i in 0..<perClass {
                if name == "photo" {
                    try FileManager.default.copyItem(at: Self.jpegFixtures.appendingPathComponent(jpegs[i % jpegs.count]),
                                                     to: folder.appendingPathComponent("photo-\(i).JPG"))
                } else {
                    let bytes = try stripes(top: name == "top", rows: 20 + (i * 7) % 21, columns: 20 + (i * 5) % 21, seed: i)
                    try Data(bytes).write(to: folder.appendingPathComponent("\(name)-\(i).png"))
                }
            }
        }
    }

    func train(_ data: URL, out: URL, _ extra: [String] = []) -> [String] {
        ["train", "--model", "vit-s16-random", "--data", data.path, "--method", "lora", "--rank", "4", "--resolution", "32",
         "--batch-size", "8", "--epochs", "2", "--out", out.path] + extra
    }

    func testTrainAndPredictOnAFolderOfPNGAndJPEGImages() throws {
        let data = temporaryDirectory("folder-data", for: self), out = temporaryDirectory("folder-run", for: self)
        try makeFolder(data)
        try Data("not an image".utf8).write(to: data.appendingPathComponent("top/notes.txt"))
        let outcome = try PeftProcess.run(train(data, out: out), timeout: 120)
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stderr.contains("3 classes, 36 images (train 30, validation 3, test 3), split by seed 0"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("ignored 1 file"), outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("folder:"), outcome.stdout)
        let config = try String(contentsOf: out.appendingPathComponent("adapter/adapter_config.json"), encoding: .utf8)
        XCTAssertTrue(config.contains("\"bottom\"") && config.contains("\"photo\"") && config.contains("\"top\""), config)
        // predict names the classes from the adapter.
        let image = data.appendingPathComponent("top/top-0.png")
        let predicted = try PeftProcess.run(["predict", "--model", "vit-s16-random", "--adapter", out.appendingPathComponent("adapter").path,
                                             "--top-k", "3", image.path])
        assertSuccess(predicted)
        for name in ["bottom", "photo", "top"] { XCTAssertTrue(predicted.stdout.contains(name), predicted.stdout) }
        // eval rebuilds the same split from the run's settings.
        let evaluated = try PeftProcess.run(["eval", out.path])
        assertSuccess(evaluated)
        XCTAssertTrue(evaluated.stdout.contains("test accuracy"), evaluated.stdout)
        // Same seed, same split and numbers: the run's test accuracy is what eval reports.
        let result = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("result.json"))) as? [String: Any]
        let accuracy = try XCTUnwrap(result?["testAccuracy"] as? Double)
        XCTAssertTrue(evaluated.stdout.contains(String(format: "%.2f%%", 100 * accuracy)), "\(evaluated.stdout) vs \(accuracy)")
    }

    /// A model folder as transformers saves it (the committed tiny ViT and DINOv2) as the backbone of a run on the
    /// user's images, then predict and eval on the adapter, which records the folder as its base.
    func testAHuggingFaceModelFolderTrainsOnTheImages() throws {
        let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/hf")
        let data = temporaryDirectory("folder-hf-data", for: self)
        try makeFolder(data, perClass: 6)
        for name in ["vit-tiny", "dinov2-tiny"] {
            let out = temporaryDirectory("folder-hf-run-\(name)", for: self)
            let model = models.appendingPathComponent(name).path
            let outcome = try PeftProcess.run(["train", "--model", model, "--data", data.path, "--method", "lora", "--rank", "2",
                                               "--resolution", "16", "--batch-size", "4", "--epochs", "1", "--out", out.path])
            assertSuccess(outcome)
            let config = try String(contentsOf: out.appendingPathComponent("adapter/adapter_config.json"), encoding: .utf8)
            XCTAssertTrue(config.contains(name), "the adapter names its base folder: \(config)")
            XCTAssertTrue(config.contains(name == "dinov2-tiny" ? "\"dinov2\"" : "\"vit\""), config)
            let predicted = try PeftProcess.run(["predict", "--adapter", out.appendingPathComponent("adapter").path,
                                                 data.appendingPathComponent("top/top-0.png").path])
            assertSuccess(predicted)
            XCTAssertTrue(predicted.stdout.contains("top") || predicted.stdout.contains("bottom") || predicted.stdout.contains("photo"), predicted.stdout)
        }
        let unknown = try PeftProcess.run(["train", "--model", models.appendingPathComponent("bert-tiny").path, "--data", data.path,
                                           "--out", temporaryDirectory("folder-hf-bad", for: self).path])
        assertCleanFailure(unknown, mentions: "is an image folder; choose a vision model")
    }

    /// `grey` (row-major bytes) written as a JPEG by libjpeg-turbo's `cjpeg` (Debian's libjpeg-turbo-progs, which
    /// scripts/setup.sh installs) from a binary PGM.
    func writeJPEG(width: Int, height: Int, grey: [UInt8], to url: URL) throws {
        let pgm = url.deletingPathExtension().appendingPathExtension("pgm")
        try (Data("P5\n\(width) \(height)\n255\n".utf8) + Data(grey)).write(to: pgm)
        defer { try? FileManager.default.removeItem(at: pgm) }
        guard let cjpeg = ["/usr/bin/cjpeg", "/usr/local/bin/cjpeg"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no cjpeg: apt-get install libjpeg-turbo-progs (scripts/setup.sh installs it)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cjpeg)
        process.arguments = ["-quality", "92", "-outfile", url.path, pgm.path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "cjpeg \(pgm.path)")
    }

    /// Fashion-MNIST test images written out as a folder per class of PNGs and (every other image) JPEGs encoded
    /// by libjpeg-turbo, as a user's export would be; the JPEGs decode to the image within JPEG's loss; trained on
    /// for one epoch, then the whole folder classified as CSV and as JSONL.
    func testAFashionMNISTFolderEndToEnd() throws {
        let task = try TaskRegistry.image(named: "fmnist-1k")
        let data = temporaryDirectory("folder-fmnist", for: self), out = temporaryDirectory("folder-fmnist-run", for: self)
        var perClass = [Int](repeating: 0, count: task.classNames.count)
        var jpegError = 0.0, jpegPixels = 0
        for (image, label) in zip(task.test.images, task.test.labels) where perClass[label] < 6 {
            let folder = data.appendingPathComponent(task.classNames[label].replacingOccurrences(of: "/", with: "-"))
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let grey = image.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }
            if perClass[label] % 2 == 1 {
                let file = folder.appendingPathComponent("\(perClass[label]).jpg")
                try writeJPEG(width: task.columns, height: task.rows, grey: grey, to: file)
                let decoded = try JPEGImage.decode([UInt8](try Data(contentsOf: file)), name: file.path)
                XCTAssertEqual([decoded.width, decoded.height], [task.columns, task.rows])
                for (i, value) in grey.enumerated() { jpegError += abs(Double(decoded.rgb[3 * i]) - Double(value)) }
                jpegPixels += grey.count
            } else {
                try Data(try PNGImage.encode(width: task.columns, height: task.rows, rgb: grey.flatMap { [$0, $0, $0] }))
                    .write(to: folder.appendingPathComponent("\(perClass[label]).png"))
            }
            perClass[label] += 1
        }
        XCTAssertEqual(jpegPixels, 30 * task.columns * task.rows, "half the 60 images are JPEG")
        XCTAssertLessThan(jpegError / Double(jpegPixels), 4, "mean |decoded JPEG - image| in grey levels")
        let trained = try PeftProcess.run(["train", "--model", "vit-s16-random", "--data", data.path, "--method", "lora", "--rank", "4",
                                           "--resolution", "32", "--batch-size", "8", "--epochs", "1", "--out", out.path], timeout: 120)
        assertSuccess(trained)
        XCTAssertTrue(trained.stderr.contains("10 classes, 60 images"), trained.stderr)
        let adapter = out.appendingPathComponent("adapter").path
        let csv = try PeftProcess.run(["predict", "--adapter", adapter, "--format", "csv", "--top-k", "2", data.path])
        assertSuccess(csv)
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "file,label_1,probability_1,label_2,probability_2")
        XCTAssertEqual(lines.count, 61, "a header and one row per image")
        XCTAssertTrue(lines.dropFirst().allSatisfy { $0.hasPrefix(data.path) && $0.split(separator: ",").count == 5 }, csv.stdout)
        let jsonl = try PeftProcess.run(["predict", "--adapter", adapter, "--format", "jsonl", data.path])
        assertSuccess(jsonl)
        let objects = try jsonl.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(objects.count, 60)
        let first = try XCTUnwrap(objects.first ?? nil)
        let top = try XCTUnwrap(first["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 5)
        let probabilities = top.compactMap { $0["probability"] as? Double }
        XCTAssertEqual(probabilities, probabilities.sorted(by: >), "best first")
        XCTAssertTrue(task.classNames.map { $0.replacingOccurrences(of: "/", with: "-") }.contains(top[0]["label"] as? String ?? ""), "\(top)")
    }

    func testExplicitSplitFoldersAreUsedAsGiven() throws {
        let data = temporaryDirectory("folder-split", for: self), out = temporaryDirectory("folder-split-run", for: self)
        try makeFolder(data.appendingPathComponent("train"), perClass: 8)
        try makeFolder(data.appendingPathComponent("val"), perClass: 2)
        try makeFolder(data.appendingPathComponent("test"), perClass: 3, classes: ["bottom", "top"])
        let outcome = try PeftProcess.run(train(data, out: out), timeout: 120)
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stderr.contains("3 classes, 36 images (train 24, validation 6, test 6)"), outcome.stderr)
    }

    func testBadFoldersAreRefusedNamingTheProblem() throws {
        let out = temporaryDirectory("folder-bad-run", for: self)
        // One class only.
        let single = temporaryDirectory("folder-single", for: self)
        try makeFolder(single, perClass: 4, classes: ["top"])
        assertCleanFailure(try PeftProcess.run(train(single, out: out)), mentions: "has one class ('top')")
        // An empty class.
        let empty = temporaryDirectory("folder-empty", for: self)
        try makeFolder(empty, perClass: 4, classes: ["top", "bottom"])
        try FileManager.default.createDirectory(at: empty.appendingPathComponent("nothing"), withIntermediateDirectories: true)
        assertCleanFailure(try PeftProcess.run(train(empty, out: out)), mentions: "class 'nothing' has no PNG or JPEG images")
        // Too few images to split by seed.
        let few = temporaryDirectory("folder-few", for: self)
        try makeFolder(few, perClass: 2, classes: ["top", "bottom"])
        assertCleanFailure(try PeftProcess.run(train(few, out: out)), mentions: "splitting it by seed needs at least 3")
        // A test class that training lacks.
        let stray = temporaryDirectory("folder-stray", for: self)
        try makeFolder(stray.appendingPathComponent("train"), perClass: 4, classes: ["top", "bottom"])
        try makeFolder(stray.appendingPathComponent("test"), perClass: 2, classes: ["top", "photo"])
        assertCleanFailure(try PeftProcess.run(train(stray, out: out)), mentions: "class 'photo' has no folder in train/")
        // Not a folder at all.
        assertCleanFailure(try PeftProcess.run(train(stray.appendingPathComponent("nowhere"), out: out)), mentions: "not a folder")
    }

    func testACorruptImageStopsTheRunUnlessSkipped() throws {
        let data = temporaryDirectory("folder-corrupt", for: self)
        try makeFolder(data, perClass: 6, classes: ["top", "bottom"])
        let bad = data.appendingPathComponent("top/broken.png")
        var bytes = try stripes(top: true, rows: 24, columns: 24, seed: 99)
        bytes.removeLast(bytes.count / 2)
        try Data(bytes).write(to: bad)
        let stopped = try PeftProcess.run(train(data, out: temporaryDirectory("folder-corrupt-run", for: self)))
        assertCleanFailure(stopped, mentions: bad.path)
        XCTAssertTrue(stopped.stderr.contains("--skip-bad"), stopped.stderr)
        let skipped = try PeftProcess.run(train(data, out: temporaryDirectory("folder-skip-run", for: self), ["--skip-bad"]))
        assertSuccess(skipped)
        XCTAssertTrue(skipped.stderr.contains("skipped 1 unreadable image (--skip-bad): \(bad.path)"), skipped.stderr)
    }
}
