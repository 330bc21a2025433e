import Engine
import Foundation
import Training
import XCTest

final class ImageFolderDatasetTests: XCTestCase {
    func makeFolder(_ counts: [String: Int]) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("image-folder-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        for (name, count) in counts {
            let folder = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for i in 0..<count {
                let rgb = [UInt8](repeating: UInt8(i % 256), count: 8 * 6 * 3)
                try Data(try PNGImage.encode(width: 6, height: 8, rgb: rgb)).write(to: folder.appendingPathComponent("\(i).png"))
            }
        }
        return root
    }

    func testTheSeededSplitIsStratifiedAndRepeatable() throws {
        let root = try makeFolder(["a": 20, "b": 10, "c": 3])
        let first = try ImageFolderDataset.load(root, side: 4, seed: 7, skipBad: false)
        let again = try ImageFolderDataset.load(root, side: 4, seed: 7, skipBad: false)
        let other = try ImageFolderDataset.load(root, side: 4, seed: 8, skipBad: false)
        XCTAssertEqual(first.classNames, ["a", "b", "c"])
        func count(_ split: PictureSplit, _ label: Int) -> Int { split.labels.filter { $0 == label }.count }
        // 10% (at least one) of each class to test, then to validation; the rest trains.
        XCTAssertEqual([0, 1, 2].map { count(first.test, $0) }, [2, 1, 1])
        XCTAssertEqual([0, 1, 2].map { count(first.validation, $0) }, [2, 1, 1])
        XCTAssertEqual([0, 1, 2].map { count(first.train, $0) }, [16, 8, 1])
        XCTAssertEqual(first.test.files, again.test.files)
        XCTAssertNotEqual(first.test.files + first.validation.files, other.test.files + other.validation.files, "the seed chooses the split")
        XCTAssertTrue(Set(first.train.files).isDisjoint(with: first.test.files + first.validation.files))
        XCTAssertEqual(first.train.pictures.first?.count, 3 * 4 * 4, "pictures are stored at the training side")
    }

    func testAFlippedPictureIsMirrored() {
        let side = 3
        let picture: [UInt8] = (0..<(3 * side * side)).map { UInt8($0 * 9) }
        let source = PictureBatchSource(split: PictureSplit(side: side, pictures: [picture], labels: [0], files: ["x"]),
                                        preprocessor: ImagePreprocessor(resolution: side, mean: [0, 0, 0], std: [1, 1, 1]), flip: true)
        guard case .images(let plain) = source.batch([0], flips: [false]), case .images(let flipped) = source.batch([0], flips: [true]) else {
            return XCTFail("image batches expected")
        }
        for channel in 0..<3 {
            for y in 0..<side {
                for x in 0..<side {
                    let i = channel * side * side + y * side
                    XCTAssertEqual(plain.data[i + x], Float(picture[i + x]) / 255, accuracy: 1e-6)
                    XCTAssertEqual(flipped.data[i + x], plain.data[i + side - 1 - x])
                }
            }
        }
    }
}
