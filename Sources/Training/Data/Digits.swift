import Foundation

/// Reader for scikit-learn's handwritten digits (`digits.csv.gz`, BSD-3): 1,797 images of 8x8 pixels with
/// values 0...16, ten classes "0"..."9". Each CSV row holds the 64 pixel values then the label.
public enum Digits {
    /// The ten class names, by label.
    public static let classNames = (0...9).map(String.init)
    /// Image side in pixels.
    public static let side = 8
    /// Brightest pixel value.
    public static let maximumPixelValue = 16

    /// `<assets>/digits/digits.csv.gz`, where `<assets>` is `assetsDirectory`, else the `PEFT_ASSETS`
    /// environment variable, else `assets` in the current directory.
    public static func defaultFile(assetsDirectory: URL? = nil) -> URL {
        let assets = assetsDirectory
            ?? ProcessInfo.processInfo.environment["PEFT_ASSETS"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("assets")
        return assets.appendingPathComponent("digits").appendingPathComponent("digits.csv.gz")
    }

    /// Loads the digits from a CSV file, gzipped or not.
    ///
    /// - Throws: ``DataReaderError`` naming the file (and line) when it is missing, corrupt, has a row without
    ///   65 numbers, a pixel outside 0...16 or a label outside 0...9.
    public static func load(_ url: URL) throws -> LabelledGreyImages {
        let bytes = try DataFileBytes.read(url)
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw DataReaderError(file: url.path, problem: "is not UTF-8 text")
        }
        return try parse(text, name: url.path)
    }

    /// Parses the CSV text; `name` is used in error messages.
    public static func parse(_ text: String, name: String) throws -> LabelledGreyImages {
        let pixelCount = side * side
        var pixels: [UInt8] = []
        var labels: [Int] = []
        for (lineIndex, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            func failure(_ problem: String) -> DataReaderError {
                DataReaderError(file: name, problem: "line \(lineIndex + 1): \(problem)")
            }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == pixelCount + 1 else {
                throw failure("expected \(pixelCount + 1) comma-separated values (64 pixels and a label), found \(fields.count)")
            }
            var values: [Int] = []
            values.reserveCapacity(fields.count)
            for field in fields {
                let token = field.trimmingCharacters(in: .whitespaces)
                guard let number = Double(token), number.isFinite, number == number.rounded(),
                      abs(number) < 1_000_000 else {
                    throw failure("'\(token)' is not a whole number")
                }
                values.append(Int(number))
            }
            let label = values[pixelCount]
            guard (0..<classNames.count).contains(label) else { throw failure("label \(label) is not in 0...9") }
            for value in values[0..<pixelCount] {
                guard (0...maximumPixelValue).contains(value) else {
                    throw failure("pixel value \(value) is not in 0...\(maximumPixelValue)")
                }
                pixels.append(UInt8(value))
            }
            labels.append(label)
        }
        guard !labels.isEmpty else { throw DataReaderError(file: name, problem: "holds no rows") }
        return LabelledGreyImages(rows: side, columns: side, pixels: pixels, maximumPixelValue: maximumPixelValue,
                                  labels: labels, classNames: classNames)
    }
}
