import Engine
import Foundation

/// Images of one split of a user's image folder, already resized to the training side: RGB bytes, 3 planes of
/// `side * side` each, with their class and file.
public struct PictureSplit: Sendable {
    public let side: Int
    public let pictures: [[UInt8]]
    public let labels: [Int]
    /// The file of each picture (for errors and listings).
    public let files: [String]

    /// A split of `side` x `side` pictures (3 planes of bytes each) with their labels and files.
    public init(side: Int, pictures: [[UInt8]], labels: [Int], files: [String]) {
        self.side = side
        self.pictures = pictures
        self.labels = labels
        self.files = files
    }
}

/// A labelled image collection on disk, the way users keep one: a folder per class of PNG and JPEG files, either
/// directly under the root (split into train, validation and test per class by a seeded shuffle: 80/10/10, at least
/// one image of each class in each split) or under `train/`, `validation/` (or `val/`) and `test/` (a missing
/// validation or test split is cut from train the same way). Class names are the folder names, sorted.
public struct ImageFolderDataset: Sendable {
    public let root: String
    public let classNames: [String]
    public let train: PictureSplit
    public let validation: PictureSplit
    public let test: PictureSplit
    /// Files that could not be decoded and were skipped (with `skipBad`), with the reason.
    public let skipped: [(file: String, reason: String)]
    /// Files in the class folders that are not PNG or JPEG by name (ignored).
    public let ignoredFiles: Int

    /// The most images a folder may hold (all are kept in memory at the training side).
    public static let maximumImages = 200_000
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    /// Reads `root`, decoding every image and resizing it to `side` x `side` (bilinear, as training does).
    ///
    /// - Throws: ``DataReaderError`` naming the folder or file: no class folders, one class only, an empty class, a
    ///   class of a validation or test folder that training lacks, too few images for a seeded split, an image
    ///   that cannot be decoded (unless `skipBad`).
    public static func load(_ root: URL, side: Int, seed: UInt64, skipBad: Bool,
                            progress: (String) -> Void = { _ in }) throws -> ImageFolderDataset {
        let path = root.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataReaderError(file: path, problem: "not a folder (give a folder with one subfolder of images per class)")
        }
        let top = try subfolders(of: root)
        let explicit = top.contains("train")
        var ignored = 0, skipped: [(String, String)] = []
        var reader = PictureReader(side: side, skipBad: skipBad)
        func read(_ folder: URL, classes: [String]?) throws -> (names: [String], files: [[URL]]) {
            let names = try subfolders(of: folder)
            guard !names.isEmpty else {
                throw DataReaderError(file: folder.path, problem: "holds no class folders (one subfolder of PNG/JPEG images per class)")
            }
            if let classes {
                if let stray = names.first(where: { !classes.contains($0) }) {
                    throw DataReaderError(file: folder.appendingPathComponent(stray).path, problem: "class '\(stray)' has no folder in train/")
                }
            }
            var files: [[URL]] = []
            for name in classes ?? names {
                let classFolder = folder.appendingPathComponent(name)
                let all = (try? FileManager.default.contentsOfDirectory(atPath: classFolder.path)) ?? []
                let visible = all.filter { !$0.hasPrefix(".") }.sorted()
                let images = visible.filter { imageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
                ignored += visible.count - images.count
                files.append(images.map { classFolder.appendingPathComponent($0) })
            }
            return (names, files)
        }
        let classNames: [String]
        var splits: [[[URL]]]  // [split][class][file]
        if explicit {
            let trainFolder = root.appendingPathComponent("train")
            let train = try read(trainFolder, classes: nil)
            classNames = train.names
            var found: [[[URL]]?] = [train.files, nil, nil]
            for (index, candidates) in [(1, ["validation", "val"]), (2, ["test"])] {
                if let name = candidates.first(where: { top.contains($0) }) {
                    found[index] = try read(root.appendingPathComponent(name), classes: classNames).files
                }
            }
            if let empty = classNames.indices.first(where: { train.files[$0].isEmpty }) {
                throw DataReaderError(file: trainFolder.appendingPathComponent(classNames[empty]).path, problem: "class '\(classNames[empty])' has no PNG or JPEG images")
            }
            var generator = RandomGenerator(seed: seed &+ 0xF01D)
            var trainFiles = train.files
            for index in [1, 2] where found[index] == nil {
                let (kept, cut) = try cutFiles(trainFiles, classNames: classNames, folder: trainFolder.path, generator: &generator)
                trainFiles = kept
                found[index] = cut
            }
            splits = [trainFiles, found[1]!, found[2]!]
        } else {
            let all = try read(root, classes: nil)
            classNames = all.names
            if let empty = classNames.indices.first(where: { all.files[$0].isEmpty }) {
                throw DataReaderError(file: root.appendingPathComponent(classNames[empty]).path, problem: "class '\(classNames[empty])' has no PNG or JPEG images")
            }
            var generator = RandomGenerator(seed: seed &+ 0xF01D)
            let (rest, test) = try cutFiles(all.files, classNames: classNames, folder: path, generator: &generator, minimum: 3)
            let (train, validation) = try cutFiles(rest, classNames: classNames, folder: path, generator: &generator,
                                                        fraction: 1.0 / 9, minimum: 2)
            splits = [train, validation, test]
        }
        guard classNames.count >= 2 else {
            throw DataReaderError(file: path, problem: "has one class ('\(classNames[0])'); a classifier needs at least two class folders")
        }
        let total = splits.joined().reduce(0) { $0 + $1.count }
        guard total <= maximumImages else {
            throw DataReaderError(file: path, problem: "holds \(total) images, more than the \(maximumImages) kept in memory")
        }
        progress("\(path): \(classNames.count) classes, \(total) images (train \(splits[0].joined().count), validation \(splits[1].joined().count), test \(splits[2].joined().count))\(explicit ? "" : ", split by seed \(seed)")")
        let made = try splits.map { try reader.split($0) }
        skipped = reader.skipped
        if !skipped.isEmpty {
            progress("skipped \(skipped.count) unreadable image\(skipped.count == 1 ? "" : "s") (--skip-bad): " + skipped.prefix(10).map { "\($0.0) (\($0.1))" }.joined(separator: "; ") + (skipped.count > 10 ? "; ..." : ""))
        }
        if ignored > 0 { progress("ignored \(ignored) file\(ignored == 1 ? "" : "s") in the class folders that are not .png, .jpg or .jpeg") }
        for (index, split) in made.enumerated() where split.labels.isEmpty {
            throw DataReaderError(file: path, problem: "the \(["train", "validation", "test"][index]) split has no readable images")
        }
        if let missing = classNames.indices.first(where: { !made[0].labels.contains($0) }) {
            throw DataReaderError(file: path, problem: "class '\(classNames[missing])' has no readable training image")
        }
        return ImageFolderDataset(root: path, classNames: classNames, train: made[0], validation: made[1], test: made[2],
                                  skipped: skipped, ignoredFiles: ignored)
    }

    /// The non-hidden subfolders of `folder`, sorted.
    static func subfolders(of folder: URL) throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder.path) } catch {
            throw DataReaderError(file: folder.path, problem: "cannot be listed (\(error.localizedDescription))")
        }
        return names.filter { name in
            var isDirectory: ObjCBool = false
            return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path, isDirectory: &isDirectory)
                && isDirectory.boolValue
        }.sorted()
    }

    /// Splits each class's files into (kept, cut) with `fraction` of them (rounded, at least one) cut at random;
    /// a class needs `minimum` files.
    static func cutFiles(_ files: [[URL]], classNames: [String], folder: String, generator: inout RandomGenerator,
                              fraction: Double = 0.1, minimum: Int = 2) throws -> (kept: [[URL]], cut: [[URL]]) {
        try stratifiedCut(files, classNames: classNames, file: folder, what: "image",
                          hint: "or give train/, validation/ and test/ folders", generator: &generator,
                          fraction: fraction, minimum: minimum, order: { $0.path < $1.path })
    }
}

/// Splits each class's items into (kept, cut), cutting `fraction` of them (rounded, at least one) at random and
/// keeping both parts in `order`; a class needs `minimum` items, else the error names `file` and the class.
func stratifiedCut<Item>(_ items: [[Item]], classNames: [String], file: String, what: String, hint: String,
                         generator: inout RandomGenerator, fraction: Double, minimum: Int,
                         order: (Item, Item) -> Bool) throws -> (kept: [[Item]], cut: [[Item]]) {
    var kept: [[Item]] = [], cut: [[Item]] = []
    for (index, list) in items.enumerated() {
        guard list.count >= minimum else {
            throw DataReaderError(file: file, problem: "class '\(classNames[index])' has \(list.count) \(what)\(list.count == 1 ? "" : "s"); splitting it by seed needs at least \(minimum) (\(hint))")
        }
        var shuffled = list
        shuffled.shuffle(using: &generator)
        let count = max(1, Int((Double(list.count) * fraction).rounded()))
        cut.append(Array(shuffled.prefix(count)).sorted(by: order))
        kept.append(Array(shuffled.dropFirst(count)).sorted(by: order))
    }
    return (kept, cut)
}

/// Decodes and resizes images for `ImageFolderDataset`, collecting the ones skipped.
struct PictureReader {
    let side: Int
    let skipBad: Bool
    var skipped: [(String, String)] = []

    mutating func split(_ classes: [[URL]]) throws -> PictureSplit {
        var pictures: [[UInt8]] = [], labels: [Int] = [], files: [String] = []
        let resizer = ImagePreprocessor(resolution: side, mean: [0, 0, 0], std: [1, 1, 1])
        for (label, list) in classes.enumerated() {
            for url in list {
                let image: InputImage
                do {
                    guard let first = try InputImage.load(url).first else { throw DataReaderError(file: url.path, problem: "holds no image") }
                    image = first
                } catch {
                    guard skipBad else {
                        throw DataReaderError(file: url.path, problem: "cannot be read as an image (\((error as? DataReaderError)?.problem ?? "\(error)")); fix or remove it, or pass --skip-bad")
                    }
                    skipped.append((url.path, (error as? DataReaderError)?.problem ?? "\(error)"))
                    continue
                }
                let plane = image.rows * image.columns
                var bytes = [UInt8](repeating: 0, count: 3 * side * side)
                for channel in 0..<3 {
                    let resized = resizer.resize(Array(image.planes[(channel * plane)..<((channel + 1) * plane)]),
                                                 rows: image.rows, columns: image.columns)
                    for i in 0..<(side * side) {
                        bytes[channel * side * side + i] = UInt8(max(0, min(255, (resized[i] * 255).rounded())))
                    }
                }
                pictures.append(bytes)
                labels.append(label)
                files.append(url.path)
            }
        }
        return PictureSplit(side: side, pictures: pictures, labels: labels, files: files)
    }
}
