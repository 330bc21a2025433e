import XCTest
import Engine
import Foundation
import Methods
import Models
import Training

/// A minimal PNG writer for the tests: stored (uncompressed) deflate blocks, filter 0 on every row.
enum TestPNG {
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let final: UInt8 = offset + length == data.count ? 1 : 0
            out += [final, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65_521; b = (b + a) % 65_521 }
        return out + bigEndian(b << 16 | a)
    }

    /// A PNG of colour type `colorType` (0 grey, 2 RGB, 3 palette, 6 RGBA) with `channels` bytes per pixel.
    static func encode(width: Int, height: Int, colorType: UInt8, pixels: [UInt8], palette: [UInt8]? = nil) -> [UInt8] {
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]!
        precondition(pixels.count == width * height * channels)
        var raw: [UInt8] = []
        for row in 0..<height {
            raw.append(0)
            raw += pixels[(row * width * channels)..<((row + 1) * width * channels)]
        }
        var png = PNGImage.signature
        png += chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, colorType, 0, 0, 0])
        if let palette { png += chunk("PLTE", palette) }
        png += chunk("IDAT", zlibStored(raw))
        png += chunk("IEND", [])
        return png
    }
}

/// `peft predict`'s pieces: PNG and IDX inputs, RGB preprocessing, probabilities.
final class PredictionTests: XCTestCase {
    static let vision = tinyVision

    func file(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-predict-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = RandomGenerator(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    }

    func testGreyPNGPredictsLikeTheSamePixelsThroughTheTrainingPath() throws {
        let (width, height) = (20, 13)
        let grey = randomBytes(width * height, seed: 1)
        let url = try file("grey.png", TestPNG.encode(width: width, height: height, colorType: 0, pixels: grey))
        let images = try InputImage.load(url)
        XCTAssertEqual(images.count, 1)
        XCTAssertEqual(images[0].name, "grey.png")
        XCTAssertEqual(images[0].rows, height)
        XCTAssertEqual(images[0].columns, width)
        let scaled = grey.map { Float($0) / 255 }
        XCTAssertEqual(images[0].planes, scaled + scaled + scaled)

        let model = ImageClassifier(vision: VisionTransformer(Self.vision, seed: 3), classes: 4, seed: 3)
        let preprocessor = ImagePreprocessor(configuration: Self.vision, resolution: 16)
        // Inputs: the PNG path equals the training path (grey resize, replicate, normalise) bit for bit.
        let fromPNG = preprocessor.batch(images)
        let direct = preprocessor.batch([scaled], rows: height, columns: width)
        XCTAssertEqual(fromPNG.values, direct.values)
        let probabilities = Prediction.probabilities(model, images: images, preprocessor: preprocessor)
        let logits = Autograd.withoutGrad { model.logits(.images(direct)) }.values
        let top = logits.max()!
        let exps = logits.map { exp($0 - top) }
        let expected = exps.map { $0 / exps.reduce(0, +) }
        XCTAssertEqual(probabilities[0].count, 4)
        for (p, q) in zip(probabilities[0], expected) { XCTAssertEqual(p, q, accuracy: 1e-6) }
        XCTAssertEqual(probabilities[0].reduce(0, +), 1, accuracy: 1e-5)
        let ranked = Prediction.top(2, of: probabilities[0])
        XCTAssertEqual(ranked.count, 2)
        XCTAssertEqual(ranked[0].classIndex, expected.indices.max { expected[$0] < expected[$1] })
        XCTAssertGreaterThanOrEqual(ranked[0].probability, ranked[1].probability)
    }

    func testRGBAlphaAndPalettePNGsBecomeRGB() throws {
        let (width, height) = (7, 5)
        let rgb = randomBytes(width * height * 3, seed: 2)
        let rgbImage = try PNGImage.load(try file("rgb.png", TestPNG.encode(width: width, height: height, colorType: 2, pixels: rgb)))
        XCTAssertEqual(rgbImage.rgb, rgb)

        // Opaque RGBA gives the RGB values; fully transparent pixels become black.
        var rgba: [UInt8] = []
        for i in 0..<(width * height) { rgba += rgb[(3 * i)..<(3 * i + 3)] + [i % 2 == 0 ? 255 : 0] }
        let alphaImage = try PNGImage.load(try file("rgba.png", TestPNG.encode(width: width, height: height, colorType: 6, pixels: rgba)))
        for i in 0..<(width * height) {
            let expected = i % 2 == 0 ? Array(rgb[(3 * i)..<(3 * i + 3)]) : [0, 0, 0]
            XCTAssertEqual(Array(alphaImage.rgb[(3 * i)..<(3 * i + 3)]), expected, "pixel \(i)")
        }

        let palette: [UInt8] = [255, 0, 0, 0, 128, 0, 10, 20, 30]
        let indices = (0..<(width * height)).map { UInt8($0 % 3) }
        let paletteImage = try PNGImage.load(try file("palette.png", TestPNG.encode(width: width, height: height, colorType: 3, pixels: indices, palette: palette)))
        for i in 0..<(width * height) {
            let entry = Int(indices[i])
            XCTAssertEqual(Array(paletteImage.rgb[(3 * i)..<(3 * i + 3)]), Array(palette[(3 * entry)..<(3 * entry + 3)]))
        }
        // The RGB planes reach the model input channel by channel.
        let inputs = try InputImage.load(try file("rgb2.png", TestPNG.encode(width: width, height: height, colorType: 2, pixels: rgb)))
        let plane = width * height
        XCTAssertEqual(inputs[0].planes[plane + 4], Float(rgb[3 * 4 + 1]) / 255)
    }

    func testCorruptTruncatedAndUnknownFilesAreRefusedNamingTheFile() throws {
        let good = TestPNG.encode(width: 9, height: 9, colorType: 0, pixels: randomBytes(81, seed: 4))
        let truncated = try file("truncated.png", Array(good.prefix(good.count - 30)))
        var damaged = good
        damaged[60] ^= 0xFF  // inside IDAT: its CRC no longer matches
        let corrupt = try file("corrupt.png", damaged)
        let garbage = try file("notes.txt", Array("hello, not an image".utf8))
        for url in [truncated, corrupt, garbage] {
            XCTAssertThrowsError(try InputImage.load(url), url.lastPathComponent) { error in
                XCTAssertTrue("\(error)".contains(url.path), "\(error)")
            }
        }
    }

    func testIDXFileGivesOnePredictionPerImage() throws {
        let (count, rows, columns) = (3, 6, 5)
        let pixels = randomBytes(count * rows * columns, seed: 5)
        let idx: [UInt8] = [0, 0, 8, 3] + TestPNG.bigEndian(UInt32(count)) + TestPNG.bigEndian(UInt32(rows))
            + TestPNG.bigEndian(UInt32(columns)) + pixels
        let images = try InputImage.load(try file("three.idx", idx))
        XCTAssertEqual(images.map(\.name), ["three.idx[0]", "three.idx[1]", "three.idx[2]"])
        let size = rows * columns
        XCTAssertEqual(images[2].planes, Array(repeating: pixels[(2 * size)...].map { Float($0) / 255 }, count: 3).flatMap { $0 })
        let model = ImageClassifier(vision: VisionTransformer(Self.vision, seed: 3), classes: 4, seed: 3)
        let probabilities = Prediction.probabilities(model, images: images, preprocessor: ImagePreprocessor(configuration: Self.vision, resolution: 16))
        XCTAssertEqual(probabilities.count, 3)
    }
}
