import Engine
import Foundation

/// Labelled texts read from a user's CSV or JSONL file: a `text` and a `label` per row.
///
/// CSV: a header row naming the columns (`text` and `label`, any case, any other columns ignored), fields separated
/// by commas, quoted with `"` where they hold commas, quotes (doubled) or line breaks, as RFC 4180 and
/// spreadsheets write them. JSONL: one object per line with a string `text` and a string or integer `label`; blank
/// lines are skipped. Errors name the file and line.
public enum TextTable {
    /// The most rows one file may hold, and the longest text kept (longer ones are cut; the tokenizer keeps 128
    /// tokens anyway).
    public static let maximumRows = 1_000_000
    public static let maximumTextCharacters = 100_000

    /// (text, label, line) of every row of `url` (CSV unless its name ends in .jsonl or .json). With `skipped`, a row
    /// that is bad on its own (a JSONL line that is not an object with text and label; a CSV row with the wrong field
    /// count or no label) is left out and described there instead of stopping the read; a file that cannot be split
    /// into rows (an unclosed quote, no header) still fails.
    public static func read(_ url: URL) throws -> [(text: String, label: String, line: Int)] {
        var skipped: [String]? = nil
        return try read(url, skipped: &skipped)
    }

    /// `read`, leaving out the rows that are bad on their own and describing each in `skipped` ("file:line: problem").
    public static func readSkippingBadRows(_ url: URL) throws -> (rows: [(text: String, label: String, line: Int)], skipped: [String]) {
        var skipped: [String]? = []
        let rows = try read(url, skipped: &skipped)
        return (rows, skipped ?? [])
    }

    /// With `skipped` nil a bad row stops the read; otherwise it is appended there.
    static func read(_ url: URL, skipped: inout [String]?) throws -> [(text: String, label: String, line: Int)] {
        let bytes = try DataFileBytes.read(url)
        guard var text = String(validating: bytes, as: UTF8.self) else {
            throw DataReaderError(file: url.path, problem: "is not UTF-8 text")
        }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        let name = url.lastPathComponent.lowercased()
        let rows = name.hasSuffix(".jsonl") || name.hasSuffix(".json") || name.hasSuffix(".jsonl.gz")
            ? try jsonLines(text, path: url.path, skipped: &skipped) : try csv(text, path: url.path, skipped: &skipped)
        guard !rows.isEmpty else { throw DataReaderError(file: url.path, problem: "holds no examples") }
        return rows
    }

    static func jsonLines(_ text: String, path: String, skipped: inout [String]?) throws -> [(text: String, label: String, line: Int)] {
        var rows: [(String, String, Int)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            do {
                rows.append(try jsonRow(trimmed, at: "\(path):\(index + 1)", line: index + 1))
            } catch let error as DataReaderError {
                guard skipped != nil else { throw error }
                skipped?.append("\(error.file): \(error.problem)")
            }
            guard rows.count <= maximumRows else { throw DataReaderError(file: path, problem: "has more than \(maximumRows) rows") }
        }
        return rows
    }

    /// One JSONL line as (text, label, line); errors name `place` ("file:line").
    static func jsonRow(_ line: String, at place: String, line number: Int) throws -> (String, String, Int) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw DataReaderError(file: place, problem: "not a JSON object")
        }
        guard let value = object["text"] as? String else { throw DataReaderError(file: place, problem: "no string 'text'") }
        let label: String
        if let string = object["label"] as? String { label = string } else if let integer = object["label"] as? Int {
            label = "\(integer)"
        } else {
            throw DataReaderError(file: place, problem: "no 'label' (a string or an integer)")
        }
        return (String(value.prefix(maximumTextCharacters)), label, number)
    }

    static func csv(_ text: String, path: String, skipped: inout [String]?) throws -> [(text: String, label: String, line: Int)] {
        var records: [(fields: [String], line: Int)] = []
        var fields: [String] = [], field = "", quoted = false, afterQuote = false
        var line = 1, recordLine = 1
        var characters = text.unicodeScalars.makeIterator()
        func endRecord() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].isEmpty) { records.append((fields, recordLine)) }
            fields = []; field = ""
        }
        while let c = characters.next() {
            if quoted {
                if c == "\"" { quoted = false; afterQuote = true; continue }
                if c == "\n" { line += 1 }
                field.unicodeScalars.append(c)
                continue
            }
            switch c {
            case "\"":
                if afterQuote { field.append("\""); quoted = true; afterQuote = false; continue }  // "" inside quotes
                guard field.isEmpty else { throw DataReaderError(file: "\(path):\(line)", problem: "a quote inside an unquoted field (quote the whole field)") }
                quoted = true
            case ",":
                fields.append(field); field = ""
            case "\r":
                break
            case "\n":
                endRecord()
                line += 1
                recordLine = line
            default:
                if afterQuote { throw DataReaderError(file: "\(path):\(line)", problem: "text after a closing quote") }
                field.unicodeScalars.append(c)
            }
            afterQuote = false
            if records.count > maximumRows + 1 { throw DataReaderError(file: path, problem: "has more than \(maximumRows) rows") }
        }
        if quoted { throw DataReaderError(file: "\(path):\(recordLine)", problem: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        guard let header = records.first else { throw DataReaderError(file: path, problem: "holds no header row") }
        let names = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let textColumn = names.firstIndex(of: "text"), let labelColumn = names.firstIndex(of: "label") else {
            throw DataReaderError(file: "\(path):1", problem: "the header row must name a 'text' and a 'label' column (found: \(header.fields.joined(separator: ", ")))")
        }
        var rows: [(text: String, label: String, line: Int)] = []
        for record in records.dropFirst() {
            let problem: String
            if record.fields.count != header.fields.count {
                problem = "\(record.fields.count) fields, the header has \(header.fields.count)"
            } else if record.fields[labelColumn].trimmingCharacters(in: .whitespaces).isEmpty {
                problem = "the label is empty"
            } else {
                rows.append((String(record.fields[textColumn].prefix(maximumTextCharacters)),
                             record.fields[labelColumn].trimmingCharacters(in: .whitespaces), record.line))
                continue
            }
            guard skipped != nil else { throw DataReaderError(file: "\(path):\(record.line)", problem: problem) }
            skipped?.append("\(path):\(record.line): \(problem)")
        }
        return rows
    }
}

/// A text classification dataset of the user's: one CSV or JSONL file (split 80/10/10 per class by a seeded
/// shuffle) or a folder holding `train`, and optionally `validation` (or `val`) and `test`, files of the same kind
/// (a missing one is cut from train). Class names are the labels, sorted (as numbers when all are integers).
public struct TextDataset: Sendable {
    public let source: String
    public let classNames: [String]
    public let train: TextSplit
    public let validation: TextSplit
    public let test: TextSplit

    /// Whether `url` names a text dataset: a .csv/.jsonl file, or a folder with a train.csv or train.jsonl.
    public static func isText(_ url: URL) -> Bool {
        let name = url.lastPathComponent.lowercased()
        if [".csv", ".jsonl", ".json", ".csv.gz", ".jsonl.gz"].contains(where: { name.hasSuffix($0) }) { return true }
        return splitFile("train", in: url) != nil
    }

    static func splitFile(_ split: String, in folder: URL) -> URL? {
        for name in [split, split == "validation" ? "val" : nil].compactMap({ $0 }) {
            for ext in ["csv", "jsonl", "csv.gz", "jsonl.gz"] {
                let url = folder.appendingPathComponent("\(name).\(ext)")
                if FileManager.default.fileExists(atPath: url.path) { return url }
            }
        }
        return nil
    }

    /// Reads `url`; errors name the file (and line) and the problem: no rows, one class, a class of validation or
    /// test that training lacks, too few examples of a class for a seeded split.
    public static func load(_ url: URL, seed: UInt64, skipBad: Bool = false, progress: (String) -> Void = { _ in }) throws -> TextDataset {
        var skipped: [String] = []
        func rows(_ file: URL) throws -> [(text: String, label: String, line: Int)] {
            guard skipBad else { return try TextTable.read(file) }
            let read = try TextTable.readSkippingBadRows(file)
            skipped += read.skipped
            return read.rows
        }
        let files: [URL?]
        if let train = splitFile("train", in: url) {
            files = [train, splitFile("validation", in: url), splitFile("test", in: url)]
        } else {
            files = [url, nil, nil]
        }
        let trainRows = try rows(files[0]!)
        let labels = Set(trainRows.map(\.label))
        let classNames = labels.allSatisfy({ Int($0) != nil })
            ? labels.sorted { Int($0)! < Int($1)! } : labels.sorted()
        guard classNames.count >= 2 else {
            throw DataReaderError(file: files[0]!.path, problem: "has one label ('\(classNames.first ?? "")'); a classifier needs at least two")
        }
        let index = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
        func grouped(_ rows: [(text: String, label: String, line: Int)], file: URL) throws -> [[(String, Int)]] {
            var groups = [[(String, Int)]](repeating: [], count: classNames.count)
            for row in rows {
                guard let label = index[row.label] else {
                    throw DataReaderError(file: "\(file.path):\(row.line)", problem: "label '\(row.label)' does not occur in the training data")
                }
                groups[label].append((row.text, row.line))
            }
            return groups
        }
        var generator = RandomGenerator(seed: seed &+ 0x7E77)
        var train = try grouped(trainRows, file: files[0]!)
        var others: [[[(String, Int)]]?] = [nil, nil]
        for split in 0..<2 {
            if let file = files[split + 1] { others[split] = try grouped(try rows(file), file: file) }
        }
        let hint = "or give train, validation and test files in one folder"
        let byLine: ((String, Int), (String, Int)) -> Bool = { $0.1 < $1.1 }
        let singleFile = others[0] == nil && others[1] == nil
        // Test first (10%), then validation (10% of the whole: 1/9 of the rest when both are cut).
        for split in [1, 0] where others[split] == nil {
            let (kept, cut) = try stratifiedCut(train, classNames: classNames, file: files[0]!.path, what: "example", hint: hint,
                                                generator: &generator, fraction: singleFile && split == 0 ? 1.0 / 9 : 0.1,
                                                minimum: singleFile && split == 1 ? 3 : 2, order: byLine)
            train = kept
            others[split] = cut
        }
        func split(_ groups: [[(String, Int)]]) -> TextSplit {
            let pairs = groups.enumerated().flatMap { label, rows in rows.map { ($0.0, label, $0.1) } }.sorted { $0.2 < $1.2 }
            return TextSplit(texts: pairs.map(\.0), labels: pairs.map(\.1))
        }
        let made = [split(train), split(others[0]!), split(others[1]!)]
        if !skipped.isEmpty {
            progress("skipped \(skipped.count) bad row\(skipped.count == 1 ? "" : "s") (--skip-bad): " + skipped.prefix(10).joined(separator: "; ") + (skipped.count > 10 ? "; ..." : ""))
        }
        progress("\(url.path): \(classNames.count) classes, \(made.reduce(0) { $0 + $1.count }) texts (train \(made[0].count), validation \(made[1].count), test \(made[2].count))\(files[1] == nil && files[2] == nil ? ", split by seed \(seed)" : "")")
        return TextDataset(source: url.path, classNames: classNames, train: made[0], validation: made[1], test: made[2])
    }
}
