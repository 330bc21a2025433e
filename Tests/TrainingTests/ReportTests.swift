import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Methods
import Training
import XCTest

/// The reports: cells chosen as the suite chooses them, runs of several budgets kept apart, and the accuracy
/// against parameters plot drawn where its axes say.
final class ReportTests: XCTestCase {
    func point(_ method: String, task: String = "fmnist-1k", rate: Float = 1e-3, multiplier: Float? = 1, seed: UInt64 = 0,
               validation: Double = 0.5, test: Double, parameters: Int = 10_000, budget: String = "e10-b32-r112") -> RunPoint {
        RunPoint(task: task, method: method, budget: budget, learningRate: rate, multiplier: multiplier, seed: seed,
                 validationAccuracy: validation, testAccuracy: test, trainableParameters: parameters)
    }

    func testCellsTakeTheRateTheFirstSeedPrefersOnValidationAndAverageItsSeeds() throws {
        let points = [
            point("lora", rate: 3e-4, multiplier: 0.3, validation: 0.70, test: 0.99),
            point("lora", rate: 1e-3, multiplier: 1, validation: 0.80, test: 0.60),
            point("lora", rate: 3e-3, multiplier: 3, validation: 0.80, test: 0.10),
            point("lora", rate: 1e-3, multiplier: 1, seed: 1, validation: 0.95, test: 0.70),
            point("lora", rate: 3e-4, multiplier: 0.3, seed: 2, validation: 0.99, test: 0.95),
            point("shira", rate: 1e-3, validation: 0.5, test: 0.5),
        ]
        let cells = try ReportCell.cells(points)
        XCTAssertEqual(cells.map(\.method), ["lora", "shira"])
        let lora = cells[0]
        XCTAssertEqual(lora.learningRate, 1e-3, "seed 0 decides; the tie between 1x and 3x goes to 1x; test accuracy plays no part")
        XCTAssertEqual(lora.accuracies, [0.60, 0.70], "the seeds at the chosen rate, in seed order")
        XCTAssertEqual(lora.mean, 0.65, accuracy: 1e-12)
        XCTAssertEqual(lora.spread, (0.005 as Double).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(cells[1].spread, 0)
    }

    func testRunsOfSeveralBudgetsAreNotAveragedTogether() {
        let points = [point("lora", test: 0.5), point("lora", test: 0.9, budget: "e3-b32-r112")]
        XCTAssertThrowsError(try ReportCell.cells(points)) { error in
            XCTAssertTrue("\(error)".contains("e10-b32-r112") && "\(error)".contains("e3-b32-r112") && "\(error)".contains("--budget"), "\(error)")
        }
    }

    func testARunsLabelNamesTheOptionsThatDifferFromTheDefaults() {
        XCTAssertEqual(RunPoint.label(method: "lora", config: ["seed": .int(3)]), "lora")
        XCTAssertEqual(RunPoint.label(method: "lora", config: ["r": .int(4), "lora_alpha": .real(4), "seed": .int(1)]),
                       "lora:lora_alpha=4:r=4")
        XCTAssertEqual(RunPoint.label(method: "rlrr", config: ["identity_start": .bool(true)]), "rlrr:identity_start=true")
    }

    /// Points at the corners of known axes land on the corners of the panel; variants of one method are joined;
    /// a bar is drawn only where there are several seeds; every method is in the legend.
    func testThePlotPutsPointsWhereTheAxesSay() throws {
        let cells = [
            ReportCell(task: "fmnist-1k", method: "lora:r=4", learningRate: 1e-3, trainableParameters: 10_000, accuracies: [0.80]),
            ReportCell(task: "fmnist-1k", method: "lora", learningRate: 1e-3, trainableParameters: 1_000_000, accuracies: [0.90]),
            ReportCell(task: "count-1k", method: "shira", learningRate: 1e-3, trainableParameters: 50_000, accuracies: [0.70, 0.80]),
        ]
        let plot = AccuracyPlot(cells: cells, title: "A <test> & plot")
        let svg = plot.svg()
        let parsed = try SVGElements(svg)
        let points = parsed.elements.filter { $0.name == "circle" && $0.attributes["class"] == "point" }
        XCTAssertEqual(points.count, 3)
        func centre(_ method: String) throws -> (Double, Double) {
            let circle = try XCTUnwrap(points.first { $0.attributes["data-method"] == method }, method)
            let cx = Double(circle.attributes["cx"] ?? "") ?? -1
            let cy = Double(circle.attributes["cy"] ?? "") ?? -1
            return (cx, cy)
        }
        // fmnist-1k: parameters 1e4..1e6 span the width (left margin 52, width 330); 80..90 % the height (top 30, height 230).
        let small = try centre("lora:r=4"), large = try centre("lora")
        XCTAssertEqual(small.0, 52, accuracy: 0.05)
        XCTAssertEqual(large.0, 382, accuracy: 0.05)
        XCTAssertEqual(small.1, 260, accuracy: 0.05)
        XCTAssertEqual(large.1, 30, accuracy: 0.05)
        XCTAssertEqual(parsed.elements.filter { $0.name == "polyline" }.count, 1, "only lora has two cells on one task")
        XCTAssertEqual(parsed.elements.filter { $0.name == "line" && $0.attributes["class"] == "spread" }.count, 1,
                       "only shira has several seeds")
        let panels: [String] = parsed.elements.filter { $0.name == "g" && $0.attributes["class"] == "panel" }.map { $0.attributes["data-task"] ?? "" }
        XCTAssertEqual(panels, ["fmnist-1k", "count-1k"])
        XCTAssertTrue(parsed.texts.contains("A <test> & plot"), "the title is escaped and survives parsing")
        XCTAssertTrue(parsed.texts.contains("lora") && parsed.texts.contains("shira"), "the legend names the methods")
        XCTAssertTrue(parsed.texts.contains { $0.hasPrefix("shira: 75.0% ± 7.1 over 2 seeds, 50,000 parameters") }, "\(parsed.texts)")
    }

    /// A method keeps its colour from figure to figure, whatever else is drawn.
    func testAMethodHasTheSameColourInEveryFigure() throws {
        func fill(of method: String, _ cells: [ReportCell]) throws -> String? {
            try SVGElements(AccuracyPlot(cells: cells, title: "t").svg()).elements
                .first { $0.attributes["data-method"] == method }?.attributes["fill"]
        }
        let lora = ReportCell(task: "fmnist-1k", method: "lora", learningRate: 1e-3, trainableParameters: 10_000, accuracies: [0.8])
        let linear = ReportCell(task: "fmnist-1k", method: "linear", learningRate: 1e-2, trainableParameters: 1_000, accuracies: [0.7])
        let alone = try fill(of: "lora", [lora]), together = try fill(of: "lora", [linear, lora])
        XCTAssertNotNil(alone)
        XCTAssertEqual(alone, together)
        XCTAssertNotEqual(try fill(of: "linear", [linear, lora]), together)
    }

    func testLoadingNamesTheFileThatIsNotARunOrARecord() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("fmnist-1k/lora"), withIntermediateDirectories: true)
        let record = SuiteRecord(task: "fmnist-1k", method: "lora", seed: 0, learningRateMultiplier: 1, learningRate: 1e-3,
                                 budget: SuiteBudget(epochs: 2), bestValidationAccuracy: 0.5, bestEpoch: 1, testAccuracy: 0.4,
                                 trainableParameters: 100, secondsPerStep: 1, totalSeconds: 2, finished: "2026-12-03T00:00:00Z")
        try JSONEncoder().encode(record).write(to: directory.appendingPathComponent("fmnist-1k/lora/a.json"))
        XCTAssertEqual(try RunPoint.load([directory.path]).map(\.testAccuracy), [0.4])
        var wrong = record
        wrong.testAccuracy = 40
        let bad = directory.appendingPathComponent("fmnist-1k/lora/b.json")
        try JSONEncoder().encode(wrong).write(to: bad)
        XCTAssertThrowsError(try RunPoint.load([directory.path])) { error in
            XCTAssertTrue("\(error)".contains(bad.path) && "\(error)".contains("[0, 1]"), "\(error)")
        }
        try Data("{\"not\": \"a record\"}".utf8).write(to: bad)
        XCTAssertThrowsError(try RunPoint.load([directory.path])) { error in
            XCTAssertTrue("\(error)".contains(bad.path) && "\(error)".contains("neither"), "\(error)")
        }
        XCTAssertThrowsError(try RunPoint.load([directory.appendingPathComponent("missing").path])) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
    }
}

/// The elements and texts of an SVG document, read with Foundation's XML parser (so the test also checks the
/// document is well-formed).
struct SVGElements {
    struct Element { var name: String; var attributes: [String: String] }
    var elements: [Element] = []
    var texts: [String] = []

    init(_ svg: String) throws {
        final class Collector: NSObject, XMLParserDelegate {
            var elements: [Element] = [], texts: [String] = [], current = ""
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                elements.append(Element(name: name, attributes: attributes))
                current = ""
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                let text = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !text.isEmpty { texts.append(text) }
                current = ""
            }
        }
        let collector = Collector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        guard parser.parse() else {
            throw NSError(domain: "SVG", code: 1, userInfo: [NSLocalizedDescriptionKey: "not well-formed: \(parser.parserError.map { "\($0)" } ?? "?")"])
        }
        elements = collector.elements
        texts = collector.texts
    }
}
