import Foundation
import Training
import XCTest

/// Tests of the dataset file readers: the Swift gzip/DEFLATE decoder, IDX files, Fashion-MNIST, the digits
/// CSV and fortune files, including corrupt inputs that must throw errors naming the file.
final class DataReaderTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("data-reader-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    // MARK: Helpers

    private func write(_ bytes: [UInt8], as name: String) throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Compresses `bytes` with `/bin/gzip -<level>` (which also stores the file name in the header).
    private func gzipWithTool(_ bytes: [UInt8], level: Int, name: String) throws -> [UInt8] {
        let gzip = URL(fileURLWithPath: "/bin/gzip")
        guard FileManager.default.isExecutableFile(atPath: gzip.path) else {
            XCTFail("/bin/gzip is needed to make test data")
            return []
        }
        let source = try write(bytes, as: name)
        let process = Process()
        process.executableURL = gzip
        process.arguments = ["-\(level)", "-k", "-f", source.path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "gzip failed")
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: source.path + ".gz")))
    }

    /// An IDX file with unsigned-byte data.
    private func idxBytes(dimensions: [Int], data: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for size in dimensions {
            bytes += [UInt8(size >> 24 & 0xFF), UInt8(size >> 16 & 0xFF), UInt8(size >> 8 & 0xFF), UInt8(size & 0xFF)]
        }
        return bytes + data
    }

    /// Deterministic pseudo-random bytes (xorshift), incompressible enough to force stored blocks.
    private func noise(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    /// Asserts that `body` throws an error whose text names `url` and contains `fragment`.
    private func assertThrowsNaming<T>(_ url: URL, _ fragment: String, file: StaticString = #filePath,
                                       line: UInt = #line, _ body: () throws -> T) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(url.path), "error should name \(url.path): \(message)", file: file, line: line)
            XCTAssertTrue(message.lowercased().contains(fragment.lowercased()),
                          "error should mention '\(fragment)': \(message)", file: file, line: line)
        }
    }

    // MARK: Gzip / DEFLATE on known data

    /// Text whose compressed form (embedded below) uses a dynamic-Huffman block.
    private static let dynamicText = (0..<200).map { "line \($0): \($0 * $0 % 97)\n" }.joined()
    private static let dynamicGzip = """
        H4sIAAAAAAAA/02WSRLkOAhF930KH0FoYPB9etERFXX/ZYMT+NqRMslHDM/+89/ff5/xPuOfP2HR+9DPmu+zf9Z6H/tZ25/yzzzvM8/P5PdZeSr+\
        p/TV9+EMYO+jGZVcaqXpWjM9KNQkbdeTmbYrlumKq6K4JNe5a1pmQi66KryrSt5quiql/3TZkz7TZS1Tny67M53pslZ1cN1d/q5r5eO6p+K7rqbp\
        spzpLJedeavlspo+y2VPFddlZ6a2XFazfMtlOVNYUeGK6bJU5yGb6a/QTXu77k6t7bor42/XpTp33XKP2+YNt8tqSm2Xleq8y0qdu6yUv8E+Az6H\
        8N8zEfMsaJ3dKZyDzA4j4yO4yVHc8BhuzgMVYUKleKKCvFBZ3qg4H3SCGR1iQedY0VG2brQM9F8IcyET8yILcyQb8yUHcyeMeRTBnIpifsUw1zow\
        70rYA53YD129NrqxTXqwZcrYPpVeSlXsqtq1wgObbYSFtwkO2AIebDc07DRJjBsvJs0cU5xa+9IYHYIGITSNS5PGQjI0NrKkcZA+Db4ZhPvS0ItC\
        wy4MBaqaQx+syr4qTUGrRlHgqln0AatZx+gm0dVmCmaddjMMBgW1dgOSMEo0rxmjAJe128ZUUqBLy2ZMMc1rvOmDV7sZFoI+flWeH8CqtuvaLQqE\
        1dJRMIz6ycGaUlCM+8e12BQcW61jQAEFyeovQbJCB+2LKRQsK9hQ0Ez6yQGe6ONZ/5DbTe8AdoUOprVoQK2yORdLKajWFwis9dUCbH3pIFuX41wg\
        p2BblzDg1sUNunXZA2/dEL7eIvQBrkQ/wlV7A3Hd+I9xZV8vMArI9RAF5Xq8gnM9eAG6Hkm53p4UqOsxDtb1gAfsevSDdr0Ucr+6g3d4p9u1YkG8\
        ehDE66XU+6vhY16lFtQrlaBer35gr6Gg1+cKBfkaJIG+Rkywr+ET8Ku/GL6R6INf2RvfU0G/PufLX644egv8pP8H08yPIpgJAAA=
        """
    /// "hello hello hello, gzip!" in one fixed-Huffman block.
    private static let fixedGzip = "H4sIAAAAAAAA/8tIzcnJV8hAkDoK6VWZBYoAYwRtRxgAAAA="
    /// Bytes (7i + 3) mod 256 for i in 0..<300, in one stored block.
    private static let storedGzip = """
        H4sIAAAAAAAA/wEsAdP+AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vMPK0djf\
        5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWco6qxuL/GzdTb4unw9/4FDBMaISgvNj1ES1JZYGdudXyDipGYn6attLvCydDX3uXs8/oBCA8WHSQr\
        MjlAR05VXGNqcXh/ho2Um6KpsLe+xczT2uHo7/b9BAsSGSAnLjU8Q0pRWF9mbXR7gomQl56lrLO6wcjP1t3k6/L5AAcOFRwjKjE4P0ZNVFtiaXB3\
        foWMk5qhqK+2vcTL0tng5+71/AMKERgfJi00O0JJUFdeZWxzeoGIj5adpKuyucDHztXc4+rx+P8GDRQbIikwzlcO3iwBAAA=
        """

    private func base64Bytes(_ text: String) throws -> [UInt8] {
        try XCTUnwrap(Data(base64Encoded: text)).map { $0 }
    }

    func testEmbeddedDynamicHuffmanBlock() throws {
        let compressed = try base64Bytes(Self.dynamicGzip)
        XCTAssertEqual((compressed[10] >> 1) & 3, 2, "test data should start with a dynamic-Huffman block")
        XCTAssertEqual(try Gzip.decompress(compressed, name: "dynamic.gz"), Array(Self.dynamicText.utf8))
    }

    func testEmbeddedFixedHuffmanAndStoredBlocks() throws {
        let fixed = try base64Bytes(Self.fixedGzip)
        XCTAssertEqual((fixed[10] >> 1) & 3, 1)
        XCTAssertEqual(try Gzip.decompress(fixed, name: "fixed.gz"), Array("hello hello hello, gzip!".utf8))
        let stored = try base64Bytes(Self.storedGzip)
        XCTAssertEqual((stored[10] >> 1) & 3, 0)
        XCTAssertEqual(try Gzip.decompress(stored, name: "stored.gz"), (0..<300).map { UInt8((7 * $0 + 3) % 256) })
    }

    func testConcatenatedMembers() throws {
        let fixed = try base64Bytes(Self.fixedGzip)
        let stored = try base64Bytes(Self.storedGzip)
        let expected = Array("hello hello hello, gzip!".utf8) + (0..<300).map { UInt8((7 * $0 + 3) % 256) }
        XCTAssertEqual(try Gzip.decompress(fixed + stored, name: "two-members.gz"), expected)
    }

    func testGzipToolOutputRoundTrips() throws {
        let text = Array((0..<20_000).map { "record \($0 % 977) value \($0 * 31 % 1_009);\n" }.joined().utf8)
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("one-byte", [42]),
            ("text", text),
            ("noise", noise(count: 200_000, seed: 7)),
            ("runs", [UInt8](repeating: 0, count: 100_000) + [UInt8](repeating: 255, count: 70_000)),
            ("mixed", noise(count: 40_000, seed: 3) + text + noise(count: 1_000, seed: 5)),
        ]
        for (name, payload) in cases {
            for level in [1, 6, 9] {
                let compressed = try gzipWithTool(payload, level: level, name: "\(name)-\(level).bin")
                XCTAssertEqual(compressed[3] & 0x08, 0x08, "gzip should store the file name")
                let decoded = try Gzip.decompress(compressed, name: name)
                XCTAssertEqual(decoded.count, payload.count, "\(name) at level \(level)")
                XCTAssertTrue(decoded == payload, "\(name) at level \(level) decodes wrongly")
            }
        }
    }

    // MARK: Corrupt gzip

    func testCorruptGzipThrowsNamingTheFile() throws {
        let good = try base64Bytes(Self.dynamicGzip)

        var badCRC = good
        badCRC[badCRC.count - 8] ^= 0xFF
        let badCRCURL = try write(badCRC, as: "bad-crc.gz")
        assertThrowsNaming(badCRCURL, "CRC-32 mismatch") { try IDXLabels.load(badCRCURL) }

        var badSize = good
        badSize[badSize.count - 1] ^= 0x01
        let badSizeURL = try write(badSize, as: "bad-size.gz")
        assertThrowsNaming(badSizeURL, "size mismatch") { try IDXLabels.load(badSizeURL) }

        for cut in [11, 100, good.count - 20, good.count - 5] {
            let url = try write(Array(good[0..<cut]), as: "truncated-\(cut).gz")
            assertThrowsNaming(url, "truncated") { try IDXLabels.load(url) }
        }

        let headerOnly = try write(Array(good[0..<6]), as: "header-only.gz")
        assertThrowsNaming(headerOnly, "truncated header") { try IDXLabels.load(headerOnly) }

        var badMethod = good
        badMethod[2] = 7
        let badMethodURL = try write(badMethod, as: "bad-method.gz")
        assertThrowsNaming(badMethodURL, "compression method") { try IDXLabels.load(badMethodURL) }

        var badBlockType = good
        badBlockType[10] |= 0x06  // block type 3
        let badBlockURL = try write(badBlockType, as: "bad-block.gz")
        assertThrowsNaming(badBlockURL, "block type") { try IDXLabels.load(badBlockURL) }

        let notGzip = try write(Array("plain text".utf8), as: "not-really.gz")
        assertThrowsNaming(notGzip, "not gzip") { try IDXLabels.load(notGzip) }

        let trailing = try write(good + [1, 2, 3], as: "trailing.gz")
        assertThrowsNaming(trailing, "unexpected data") { try IDXLabels.load(trailing) }
    }

    func testRandomCorruptionNeverCrashes() throws {
        let good = try base64Bytes(Self.dynamicGzip)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2_000 {
            var bytes = good
            for _ in 0..<3 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let index = 10 + Int(state >> 33) % (bytes.count - 10)
                bytes[index] ^= UInt8(truncatingIfNeeded: state >> 13) | 1
            }
            // Either an error or (rarely) some output; it must never crash or hang.
            _ = try? Gzip.decompress(bytes, name: "fuzz.gz")
        }
    }

    func testOutputLimitIsEnforced() throws {
        let compressed = try base64Bytes(Self.dynamicGzip)
        XCTAssertThrowsError(try Gzip.decompress(compressed, name: "limited.gz", outputLimit: 1_000)) { error in
            XCTAssertTrue("\(error)".contains("limited.gz") && "\(error)".contains("limit"), "\(error)")
        }
    }

    // MARK: IDX

    func testIDXRawAndGzippedFiles() throws {
        let pixels = (0..<(3 * 4 * 5)).map { UInt8($0) }
        let raw = try write(idxBytes(dimensions: [3, 4, 5], data: pixels), as: "images-idx3-ubyte")
        let images = try IDXImages.load(raw)
        XCTAssertEqual([images.count, images.rows, images.columns], [3, 4, 5])
        XCTAssertEqual(images.pixels, pixels)

        let labelBytes = idxBytes(dimensions: [6], data: [0, 1, 2, 9, 8, 7])
        let gzipped = try write(try gzipWithTool(labelBytes, level: 9, name: "labels-idx1-ubyte"), as: "labels.gz")
        XCTAssertEqual(try IDXLabels.load(gzipped).labels, [0, 1, 2, 9, 8, 7])
    }

    func testBadIDXFilesThrowNamingTheFile() throws {
        let pixels = [UInt8](repeating: 1, count: 2 * 3 * 3)
        let good = idxBytes(dimensions: [2, 3, 3], data: pixels)

        let truncated = try write(Array(good.dropLast(5)), as: "truncated-idx3")
        assertThrowsNaming(truncated, "truncated") { try IDXImages.load(truncated) }

        let truncatedHeader = try write(Array(good[0..<9]), as: "truncated-header-idx3")
        assertThrowsNaming(truncatedHeader, "truncated IDX header") { try IDXImages.load(truncatedHeader) }

        let tiny = try write([0, 0], as: "tiny-idx3")
        assertThrowsNaming(tiny, "truncated") { try IDXImages.load(tiny) }

        var wrongMagic = good
        wrongMagic[0] = 0x1A
        let wrongMagicURL = try write(wrongMagic, as: "wrong-magic-idx3")
        assertThrowsNaming(wrongMagicURL, "magic number") { try IDXImages.load(wrongMagicURL) }

        var wrongType = good
        wrongType[2] = 0x0D  // float32
        let wrongTypeURL = try write(wrongType, as: "float-idx3")
        assertThrowsNaming(wrongTypeURL, "element type") { try IDXImages.load(wrongTypeURL) }

        let labelsAsImages = try write(idxBytes(dimensions: [4], data: [1, 2, 3, 4]), as: "labels-idx1")
        assertThrowsNaming(labelsAsImages, "expected 3") { try IDXImages.load(labelsAsImages) }
        assertThrowsNaming(raw: good, "expected 1") { try IDXLabels.load($0) }

        let absurd = try write(idxBytes(dimensions: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: []), as: "absurd-idx3")
        assertThrowsNaming(absurd, "absurd") { try IDXImages.load(absurd) }

        let large = try write(idxBytes(dimensions: [60_000, 28, 28], data: pixels), as: "large-idx3")
        assertThrowsNaming(large, "need 47040016 bytes") { try IDXImages.load(large) }

        let trailing = try write(good + [0, 0], as: "trailing-idx3")
        assertThrowsNaming(trailing, "unexpected bytes") { try IDXImages.load(trailing) }

        let missing = scratch.appendingPathComponent("missing-idx3.gz")
        assertThrowsNaming(missing, "not found") { try IDXImages.load(missing) }
    }

    /// Writes `raw` to a fresh file and checks that `load` fails naming it.
    private func assertThrowsNaming<T>(raw: [UInt8], _ fragment: String, file: StaticString = #filePath,
                                       line: UInt = #line, _ load: (URL) throws -> T) {
        guard let url = try? write(raw, as: "raw-\(UUID().uuidString)") else {
            XCTFail("cannot write test file", file: file, line: line)
            return
        }
        assertThrowsNaming(url, fragment, file: file, line: line) { try load(url) }
    }

    // MARK: Real datasets

    func testFashionMNISTSplits() throws {
        let directory = FashionMNIST.defaultDirectory
        guard FileManager.default.fileExists(atPath: FashionMNIST.imagesFile(.train, directory: directory).path) else {
            XCTFail("Fashion-MNIST is missing from \(directory.path): run scripts/setup.sh (installs dataset-fashion-mnist)")
            return
        }
        let train = try FashionMNIST.load(.train)
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(train.rows, 28)
        XCTAssertEqual(train.columns, 28)
        XCTAssertEqual(train.pixels.count, 60_000 * 28 * 28)
        XCTAssertEqual(train.countsPerClass(), [Int](repeating: 6_000, count: 10))
        XCTAssertEqual(train.classNames.count, 10)
        XCTAssertEqual(train.classNames[0], "T-shirt/top")
        XCTAssertEqual(train.classNames[9], "Ankle boot")
        XCTAssertEqual(train.maximumPixelValue, 255)
        XCTAssertEqual(train.pixels(ofImage: 0).count, 784)
        XCTAssertGreaterThan(train.pixels.max() ?? 0, 200)
        XCTAssertEqual(train.normalisedPixels(ofImage: 1).count, 784)
        XCTAssertTrue(train.pixels(ofImage: 60_000).isEmpty)

        let test = try FashionMNIST.load(.test)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual([test.rows, test.columns], [28, 28])
        XCTAssertEqual(test.countsPerClass(), [Int](repeating: 1_000, count: 10))
    }

    func testFashionMNISTMissingDirectoryNamesTheFile() {
        let directory = scratch.appendingPathComponent("nowhere")
        let expected = FashionMNIST.imagesFile(.test, directory: directory)
        assertThrowsNaming(expected, "not found") { try FashionMNIST.load(.test, directory: directory) }
    }

    /// `<assets>`: PEFT_ASSETS, else `<package root>/assets`.
    private static var assetsDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["PEFT_ASSETS"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("assets")
    }

    func testDigits() throws {
        let url = Digits.defaultFile(assetsDirectory: Self.assetsDirectory)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("\(url.path) is missing: run scripts/setup.sh (CI provides it)")
            return
        }
        let digits = try Digits.load(url)
        XCTAssertEqual(digits.count, 1_797)
        XCTAssertEqual([digits.rows, digits.columns], [8, 8])
        XCTAssertEqual(digits.pixels.count, 1_797 * 64)
        XCTAssertEqual(digits.labels.min(), 0)
        XCTAssertEqual(digits.labels.max(), 9)
        XCTAssertEqual(digits.pixels.max(), 16)
        XCTAssertEqual(digits.classNames, (0...9).map(String.init))
        XCTAssertTrue(digits.countsPerClass().allSatisfy { (170...190).contains($0) }, "\(digits.countsPerClass())")
        XCTAssertEqual(digits.labels.prefix(3), [0, 1, 2])
    }

    func testDigitsRejectsBadRows() throws {
        let row = [String](repeating: "0", count: 64).joined(separator: ",")
        let shortRow = try write(Array("\(row),1\n1,2,3\n".utf8), as: "short.csv")
        assertThrowsNaming(shortRow, "line 2") { try Digits.load(shortRow) }
        let badLabel = try write(Array("\(row),12\n".utf8), as: "label.csv")
        assertThrowsNaming(badLabel, "label 12") { try Digits.load(badLabel) }
        let badPixel = try write(Array("17,\(row.dropFirst(2)),3\n".utf8), as: "pixel.csv")
        assertThrowsNaming(badPixel, "pixel value 17") { try Digits.load(badPixel) }
        let notNumber = try write(Array("x,\(row.dropFirst(2)),3\n".utf8), as: "word.csv")
        assertThrowsNaming(notNumber, "not a whole number") { try Digits.load(notNumber) }
        let empty = try write([], as: "empty.csv")
        assertThrowsNaming(empty, "no rows") { try Digits.load(empty) }
        let floats = try write(Array("\(row.replacingOccurrences(of: "0", with: "0.0")),4.0\n".utf8), as: "floats.csv")
        XCTAssertEqual(try Digits.load(floats).labels, [4])
    }

    // MARK: Fortunes

    func testFortuneCategories() throws {
        guard FileManager.default.fileExists(atPath: Fortunes.defaultDirectory.appendingPathComponent("computers").path) else {
            XCTFail("fortunes are missing from \(Fortunes.defaultDirectory.path): run scripts/setup.sh (installs fortunes)")
            return
        }
        let computers = try Fortunes.entries(category: "computers")
        let science = try Fortunes.entries(category: "science")
        XCTAssertGreaterThan(computers.count, 500)
        XCTAssertGreaterThan(science.count, 300)
        XCTAssertTrue(computers.allSatisfy { !$0.isEmpty && !$0.contains("\n%\n") })
        let all = try Fortunes.entries(categories: ["computers", "science"])
        XCTAssertEqual(all["science"]?.count, science.count)
    }

    func testFortuneParsingSkipsEmptyEntries() throws {
        let text = "first line\nsecond line\n%\n%\n  \n%\nthird\r\n%\n"
        XCTAssertEqual(Fortunes.parse(text), ["first line\nsecond line", "third"])
        let file = try write(Array(text.utf8), as: "sample")
        XCTAssertEqual(try Fortunes.entries(category: "sample", directory: scratch).count, 2)
        let emptyFile = try write(Array("%\n%\n".utf8), as: "blank")
        assertThrowsNaming(emptyFile, "no fortune entries") { try Fortunes.entries(category: "blank", directory: scratch) }
        let missing = scratch.appendingPathComponent("no-such-category")
        assertThrowsNaming(missing, "not found") { try Fortunes.entries(category: "no-such-category", directory: scratch) }
        XCTAssertThrowsError(try Fortunes.entries(category: "../etc", directory: scratch))
        _ = file
    }
}
