import Engine
import Models

/// Turns grey images into model inputs: bilinear resize (half-pixel centres, no antialias, as PyTorch's
/// `interpolate(mode="bilinear", align_corners=False)`), grey to RGB, per-channel normalisation.
public struct ImagePreprocessor: Sendable {
    public var resolution: Int
    public var mean: [Float]
    public var std: [Float]

    public init(resolution: Int, mean: [Float], std: [Float]) {
        self.resolution = resolution
        self.mean = mean
        self.std = std
    }

    /// For a vision model at a resolution (default: the model's).
    public init(configuration: VisionTransformerConfiguration, resolution: Int? = nil) {
        self.init(resolution: resolution ?? configuration.defaultResolution, mean: configuration.mean, std: configuration.std)
    }

    /// Bilinear resize of a grey image with values in [0, 1] to resolution x resolution.
    public func resize(_ grey: [Float], rows: Int, columns: Int) -> [Float] {
        let size = resolution
        var out = [Float](repeating: 0, count: size * size)
        func taps(_ outIndex: Int, _ inSize: Int) -> (Int, Int, Float) {
            let scale = Float(inSize) / Float(size)
            let source = max((Float(outIndex) + 0.5) * scale - 0.5, 0)
            let low = min(Int(source), inSize - 1)
            let high = min(low + 1, inSize - 1)
            return (low, high, source - Float(low))
        }
        let rowTaps = (0..<size).map { taps($0, rows) }, columnTaps = (0..<size).map { taps($0, columns) }
        for y in 0..<size {
            let (y0, y1, fy) = rowTaps[y]
            for x in 0..<size {
                let (x0, x1, fx) = columnTaps[x]
                let top = grey[y0 * columns + x0] * (1 - fx) + grey[y0 * columns + x1] * fx
                let bottom = grey[y1 * columns + x0] * (1 - fx) + grey[y1 * columns + x1] * fx
                out[y * size + x] = top * (1 - fy) + bottom * fy
            }
        }
        return out
    }

    /// Writes one grey image (values in [0, 1]) as a normalised RGB image into `destination`
    /// (3 * resolution^2 floats), optionally flipped left-right.
    public func writeRGB(grey: [Float], rows: Int, columns: Int, flip: Bool = false,
                         into destination: UnsafeMutablePointer<Float>) {
        let resized = resize(grey, rows: rows, columns: columns)
        let plane = resolution * resolution
        for channel in 0..<3 {
            let m = mean[channel], inverseStd = 1 / std[channel]
            let base = destination + channel * plane
            for y in 0..<resolution {
                for x in 0..<resolution {
                    let sourceX = flip ? resolution - 1 - x : x
                    base[y * resolution + x] = (resized[y * resolution + sourceX] - m) * inverseStd
                }
            }
        }
    }

    /// A batch [B, 3, S, S] from grey images.
    public func batch(_ images: [[Float]], rows: Int, columns: Int, flips: [Bool]? = nil) -> Tensor {
        let out = Tensor(uninitialized: [images.count, 3, resolution, resolution])
        let stride = 3 * resolution * resolution
        Parallel.forEachChunk(images.count, grain: 1) { range in
            for i in range {
                writeRGB(grey: images[i], rows: rows, columns: columns, flip: flips?[i] ?? false,
                         into: out.data + i * stride)
            }
        }
        return out
    }
}
