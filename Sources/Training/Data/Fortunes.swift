import Foundation

/// Reader for the text of Debian's `fortunes` package: one file per category, entries separated by a line
/// holding only `%`.
public enum Fortunes {
    /// Where Debian installs the fortune files.
    public static let defaultDirectory = URL(fileURLWithPath: "/usr/share/games/fortunes")

    /// Categories with clean, topical content, suitable as text-classification classes.
    public static let topicalCategories = ["computers", "food", "law", "medicine", "politics", "science",
                                           "sports", "education", "love"]

    /// The entries of one category, in file order, each trimmed of surrounding whitespace; empty entries are skipped.
    ///
    /// - Throws: ``DataReaderError`` naming the file when the category name is not a plain file name, or the file
    ///   is missing, unreadable or holds no entries.
    public static func entries(category: String, directory: URL = defaultDirectory) throws -> [String] {
        let url = directory.appendingPathComponent(category)
        guard !category.isEmpty, !category.contains("/"), category != ".", category != ".." else {
            throw DataReaderError(file: url.path, problem: "'\(category)' is not a fortune category name")
        }
        let bytes = try DataFileBytes.read(url)
        // The files are ASCII or UTF-8; fall back to Latin-1, which decodes any byte sequence.
        let text = String(bytes: bytes, encoding: .utf8) ?? String(bytes: bytes, encoding: .isoLatin1) ?? ""
        let entries = parse(text)
        guard !entries.isEmpty else { throw DataReaderError(file: url.path, problem: "holds no fortune entries") }
        return entries
    }

    /// The entries of several categories, keyed by category.
    public static func entries(categories: [String], directory: URL = defaultDirectory) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for category in categories { result[category] = try entries(category: category, directory: directory) }
        return result
    }

    /// Splits fortune-file text into trimmed, non-empty entries.
    public static func parse(_ text: String) -> [String] {
        var entries: [String] = []
        var current: [Substring] = []
        func finish() {
            let entry = current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
            if !entry.isEmpty { entries.append(entry) }
            current.removeAll()
        }
        // Split on scalars, not Characters: Swift treats "\r\n" as one Character.
        for line in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            let content = line.last == "\r" ? line.dropLast() : line
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: content)
            let string = Substring(String(scalars))
            if string == "%" { finish() } else { current.append(string) }
        }
        finish()
        return entries
    }
}
