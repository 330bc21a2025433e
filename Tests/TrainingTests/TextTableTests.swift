import Foundation
import Training
import XCTest

final class TextTableTests: XCTestCase {
    func write(_ text: String, name: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("text-table-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func testCSVWithQuotesCommasAndLineBreaks() throws {
        let csv = "\u{FEFF}id,Label,TEXT\r\n1,spam,\"Buy now, \"\"cheap\"\"\"\r\n2,ham,\"two\nlines\"\n3,ham,plain\n\n"
        let rows = try TextTable.read(try write(csv, name: "data.csv"))
        XCTAssertEqual(rows.map(\.text), ["Buy now, \"cheap\"", "two\nlines", "plain"])
        XCTAssertEqual(rows.map(\.label), ["spam", "ham", "ham"])
        XCTAssertEqual(rows.map(\.line), [2, 3, 5])
    }

    func testJSONLWithStringAndIntegerLabels() throws {
        let rows = try TextTable.read(try write("{\"text\": \"a\", \"label\": 3}\n\n{\"text\": \"b\", \"label\": \"x\"}\n", name: "d.jsonl"))
        XCTAssertEqual(rows.map(\.label), ["3", "x"])
        XCTAssertEqual(rows.map(\.line), [1, 3])
    }

    func testBadRowsNameTheFileAndLine() throws {
        let cases: [(String, String, String)] = [
            ("text,label\nok,a\n\"open,b\n", "d.csv", "d.csv:3: a quoted field is not closed"),
            ("text,label\nok,a\nmore,b,c\n", "d.csv", "d.csv:3: 3 fields, the header has 2"),
            ("words,class\nok,a\n", "d.csv", "d.csv:1: the header row must name a 'text' and a 'label' column"),
            ("text,label\nok,\n", "d.csv", "d.csv:2: the label is empty"),
            ("{\"text\": \"a\", \"label\": 1}\n[1]\n", "d.jsonl", "d.jsonl:2: not a JSON object"),
            ("{\"text\": \"a\"}\n", "d.jsonl", "d.jsonl:1: no 'label'"),
            ("", "d.csv", "holds no header row"),
        ]
        for (content, name, message) in cases {
            XCTAssertThrowsError(try TextTable.read(try write(content, name: name)), message) {
                XCTAssertTrue("\($0)".contains(message), "expected '\(message)' in '\($0)'")
            }
        }
    }

    func testADatasetIsSplitPerClassAndRefusesOneClass() throws {
        var csv = "text,label\n"
        for i in 0..<30 { csv += "example \(i),\(i % 3 == 0 ? 10 : 2)\n" }
        let dataset = try TextDataset.load(try write(csv, name: "d.csv"), seed: 1)
        XCTAssertEqual(dataset.classNames, ["2", "10"], "integer labels sort as numbers")
        XCTAssertEqual(dataset.test.count, 3)
        XCTAssertEqual(dataset.validation.count, 3)
        XCTAssertEqual(dataset.train.count, 24)
        XCTAssertEqual(Set(dataset.train.texts).intersection(dataset.test.texts + dataset.validation.texts), [])
        XCTAssertThrowsError(try TextDataset.load(try write("text,label\na,x\nb,x\n", name: "one.csv"), seed: 0)) {
            XCTAssertTrue("\($0)".contains("has one label ('x')"), "\($0)")
        }
    }
}

extension TextTableTests {
    func testBadRowsAreSkippedWhenAskedAndListed() throws {
        let csv = try write("text,label\nok,a\nmore,b,c\nfine,b\nnolabel,\n", name: "d.csv")
        let read = try TextTable.readSkippingBadRows(csv)
        XCTAssertEqual(read.rows.map(\.text), ["ok", "fine"])
        XCTAssertEqual(read.skipped.count, 2)
        XCTAssertTrue(read.skipped[0].hasSuffix("d.csv:3: 3 fields, the header has 2"), read.skipped[0])
        let jsonl = try write("{\"text\": \"a\", \"label\": 1}\nnot json\n{\"text\": \"b\", \"label\": 2}\n", name: "d.jsonl")
        let lines = try TextTable.readSkippingBadRows(jsonl)
        XCTAssertEqual(lines.rows.map(\.label), ["1", "2"])
        XCTAssertTrue(lines.skipped.first?.hasSuffix("d.jsonl:2: not a JSON object") == true, "\(lines.skipped)")
        // An unclosed quote breaks the rows apart: never skipped.
        XCTAssertThrowsError(try TextTable.readSkippingBadRows(try write("text,label\n\"open,a\n", name: "q.csv")))
    }
}
