import Engine
import Foundation
import Methods

/// One image to classify: three planes (R, G, B) of values in [0, 1].
public struct InputImage: Sendable {
    /// Where it came from ("digit.png", "images.idx[3]").
    public let name: String
    public let rows: Int
    public let columns: Int
    /// R plane, then G, then B, each row-major (`3 * rows * columns` values).
    public let planes: [Float]

    public init(name: String, rows: Int, columns: Int, planes: [Float]) {
        precondition(planes.count == 3 * rows * columns, "InputImage: \(planes.count) values for 3 x \(rows) x \(columns)")
        self.name = name
        self.rows = rows
        self.columns = columns
        self.planes = planes
    }

    /// A grey image (values in [0, 1]) as three equal planes.
    public init(name: String, rows: Int, columns: Int, grey: [Float]) {
        self.init(name: name, rows: rows, columns: columns, planes: grey + grey + grey)
    }

    /// Reads a PNG or JPEG file (one image) or an IDX file of unsigned bytes ([rows, columns] for one grey image,
    /// [N, rows, columns] for N, [N, rows, columns, 3] for N RGB images; raw or gzipped). Pixels are scaled by
    /// 1/255. Errors name the file.
    public static func load(_ url: URL) throws -> [InputImage] {
        try decode(DataFileBytes.read(url), name: url.lastPathComponent, path: url.path)
    }

    /// Decodes the bytes of a PNG, JPEG or IDX file (as `load`); errors name `path`, images are named from `name`.
    public static func decode(_ bytes: [UInt8], name: String, path: String) throws -> [InputImage] {
        if PNGImage.hasSignature(bytes) || JPEGImage.hasSignature(bytes) {
            let png = PNGImage.hasSignature(bytes) ? try PNGImage.decode(bytes, name: path) : try JPEGImage.decode(bytes, name: path)
            let plane = png.width * png.height
            var planes = [Float](repeating: 0, count: 3 * plane)
            for i in 0..<plane {
                for c in 0..<3 { planes[c * plane + i] = Float(png.rgb[3 * i + c]) / 255 }
            }
            return [InputImage(name: name, rows: png.height, columns: png.width, planes: planes)]
        }
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else {
            throw DataReaderError(file: path, problem: "neither a PNG, a JPEG nor an IDX file (unknown signature)")
        }
        let idx = try IDXFile.parse(bytes, name: path)
        let d = idx.dimensions
        guard d.allSatisfy({ $0 > 0 }) else {
            throw DataReaderError(file: path, problem: "IDX dimensions \(d) hold a zero: no image to classify")
        }
        if d.count >= 2 {
            let rows = d[d.count == 4 ? 1 : d.count - 2], columns = d[d.count == 4 ? 2 : d.count - 1]
            guard rows <= PNGImage.maximumSide, columns <= PNGImage.maximumSide else {
                throw DataReaderError(file: path, problem: "IDX images of \(rows) x \(columns) pixels exceed \(PNGImage.maximumSide) per side")
            }
        }
        let scaled = idx.data.map { Float($0) / 255 }
        switch d.count {
        case 2:
            return [InputImage(name: name, rows: d[0], columns: d[1], grey: scaled)]
        case 3:
            let size = d[1] * d[2]
            return (0..<d[0]).map { i in
                InputImage(name: "\(name)[\(i)]", rows: d[1], columns: d[2], grey: Array(scaled[(i * size)..<((i + 1) * size)]))
            }
        case 4 where d[3] == 3:
            let size = d[1] * d[2]
            return (0..<d[0]).map { i in
                var planes = [Float](repeating: 0, count: 3 * size)
                for p in 0..<size { for c in 0..<3 { planes[c * size + p] = scaled[(i * size + p) * 3 + c] } }
                return InputImage(name: "\(name)[\(i)]", rows: d[1], columns: d[2], planes: planes)
            }
        default:
            throw DataReaderError(file: path, problem: "IDX dimensions \(d) are not images ([rows, columns], [N, rows, columns] or [N, rows, columns, 3])")
        }
    }
}

extension ImagePreprocessor {
    /// Writes an RGB image (three planes in [0, 1]) as a normalised model input: each plane is resized exactly as
    /// a grey training image is, then normalised with its channel's mean and std. A grey image given as three
    /// equal planes therefore gives the same input as `writeRGB(grey:)`, the training path.
    public func writeRGB(planes: [Float], rows: Int, columns: Int, into destination: UnsafeMutablePointer<Float>) {
        let plane = resolution * resolution, size = rows * columns
        for channel in 0..<3 {
            let resized = resize(Array(planes[(channel * size)..<((channel + 1) * size)]), rows: rows, columns: columns)
            let m = mean[channel], inverseStd = 1 / std[channel]
            let base = destination + channel * plane
            for i in 0..<plane { base[i] = (resized[i] - m) * inverseStd }
        }
    }

    /// A batch [B, 3, S, S] from input images of any sizes.
    public func batch(_ images: [InputImage]) -> Tensor {
        let out = Tensor(uninitialized: [images.count, 3, resolution, resolution])
        let stride = 3 * resolution * resolution
        for (i, image) in images.enumerated() {
            writeRGB(planes: image.planes, rows: image.rows, columns: image.columns, into: out.data + i * stride)
        }
        return out
    }
}

/// Class probabilities of a classifier on images.
public enum Prediction {
    /// Softmax probabilities [images][classes], computed in batches of `batchSize`.
    public static func probabilities(_ model: any Classifier, images: [InputImage], preprocessor: ImagePreprocessor,
                                     batchSize: Int = 32) -> [[Float]] {
        var result: [[Float]] = []
        var start = 0
        while start < images.count {
            let chunk = Array(images[start..<min(start + batchSize, images.count)])
            let logits = Autograd.withoutGrad { model.logits(.images(preprocessor.batch(chunk))) }
            let classes = logits.shape[1], values = logits.values
            for row in 0..<chunk.count {
                let slice = values[(row * classes)..<((row + 1) * classes)]
                let top = slice.max() ?? 0
                let exps = slice.map { Foundation.exp($0 - top) }
                let total = exps.reduce(0, +)
                result.append(exps.map { $0 / total })
            }
            start += batchSize
        }
        return result
    }

    /// The `k` most probable classes, best first (ties: lower class first).
    public static func top(_ k: Int, of probabilities: [Float]) -> [(classIndex: Int, probability: Float)] {
        let order = probabilities.indices.sorted { probabilities[$0] != probabilities[$1] ? probabilities[$0] > probabilities[$1] : $0 < $1 }
        return order.prefix(max(k, 0)).map { ($0, probabilities[$0]) }
    }
}
