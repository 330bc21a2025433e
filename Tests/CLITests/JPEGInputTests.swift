import Foundation
import Training
import XCTest

/// JPEG input (libturbojpeg) against Pillow: the fixtures hold Pillow's JPEG and Pillow's own decoding of it.
final class JPEGInputTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/jpeg")

    func testDecodesBaselineProgressiveAndGreyJPEGsAsPillowDoes() throws {
        for name in ["rgb-420-baseline", "rgb-444-progressive", "grey-baseline"] {
            let jpeg = try XCTUnwrap(InputImage.load(Self.fixtures.appendingPathComponent("\(name).jpg")).first)
            let pillow = try XCTUnwrap(InputImage.load(Self.fixtures.appendingPathComponent("\(name).decoded.png")).first)
            XCTAssertEqual(jpeg.rows, pillow.rows, name)
            XCTAssertEqual(jpeg.columns, pillow.columns, name)
            // Both are libjpeg-family decoders; their inverse DCT and upsampling may differ by a level or two.
            let worst = zip(jpeg.planes, pillow.planes).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThanOrEqual(worst, 3.0 / 255, "\(name): largest difference \(worst * 255) levels")
            let mean = zip(jpeg.planes, pillow.planes).map { abs($0 - $1) }.reduce(0, +) / Float(jpeg.planes.count)
            XCTAssertLessThan(mean, 0.5 / 255, name)
        }
    }

    func testBrokenJPEGsAreRefusedWithTheFileNamed() throws {
        let bytes = try [UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent("rgb-420-baseline.jpg")))
        for (label, broken) in [("truncated header", Array(bytes.prefix(20))), ("signature only", [0xFF, 0xD8, 0xFF]),
                                ("garbage after the signature", [0xFF, 0xD8, 0xFF] + [UInt8](repeating: 0x41, count: 500))] {
            XCTAssertThrowsError(try InputImage.decode(broken, name: "x.jpg", path: "upload.jpg"), label) { error in
                XCTAssertTrue("\(error)".contains("upload.jpg") && "\(error)".contains("JPEG"), "\(label): \(error)")
            }
        }
    }
}
