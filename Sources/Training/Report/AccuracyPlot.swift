import Foundation
import Methods

/// Accuracy against trainable parameters, one panel per task, as a self-contained SVG: trainable parameters on a
/// log axis, test accuracy (mean over seeds, with a bar of ± one standard deviation when there are several) on
/// the other. Every method has its own colour; the variants of one method (`lora:r=4`, `lora`, `lora:r=16`) are
/// joined by a line in order of size, so equal-budget comparisons read as curves.
public struct AccuracyPlot: Sendable {
    public var cells: [ReportCell]
    public var title: String
    /// Size of one panel's plotting area, in pixels.
    public var panelWidth = 330.0, panelHeight = 230.0
    public var columns = 3

    public init(cells: [ReportCell], title: String) {
        self.cells = cells
        self.title = title
    }

    /// Colours for methods, in registry order (13 methods today); methods beyond them cycle.
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                          "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#e7969c", "#5254a3", "#843c39"]

    /// The base methods drawn, in registry order (then any others by name).
    var baseMethods: [String] {
        let present = Set(cells.map(\.baseMethod))
        let known = MethodRegistry.names.filter(present.contains)
        return known + present.subtracting(known).sorted()
    }

    /// A method's colour: fixed by its place in the registry, so it is the same in every figure.
    func colour(_ base: String) -> String {
        let registry = MethodRegistry.names
        let index = registry.firstIndex(of: base) ?? registry.count + (baseMethods.firstIndex(of: base) ?? 0)
        return Self.palette[index % Self.palette.count]
    }

    var tasks: [String] { ReportCell.orderedUnique(cells.map(\.task)) }

    // Margins around each panel's plotting area and the figure's title and legend.
    let left = 52.0, right = 16.0, top = 30.0, bottom = 40.0, heading = 34.0, legendRow = 18.0

    /// The horizontal position of `parameters` within a panel whose log10 range is `range`.
    func x(_ parameters: Int, _ range: (Double, Double)) -> Double {
        left + (log10(Double(parameters)) - range.0) / (range.1 - range.0) * panelWidth
    }

    /// The vertical position of `accuracy` (a fraction) within a panel whose percentage range is `range`.
    func y(_ accuracy: Double, _ range: (Double, Double)) -> Double {
        top + (range.1 - 100 * accuracy) / (range.1 - range.0) * panelHeight
    }

    /// The log10 range of the x axis for a task: whole decades around its points.
    func parameterRange(_ task: [ReportCell]) -> (Double, Double) {
        let logs = task.map { log10(Double($0.trainableParameters)) }
        let low = (logs.min() ?? 3).rounded(.down), high = (logs.max() ?? 6).rounded(.up)
        return (low, max(high, low + 1))
    }

    /// The percentage range of the y axis for a task: multiples of 5 around the means and their bars.
    func accuracyRange(_ task: [ReportCell]) -> (Double, Double) {
        let lows = task.map { 100 * ($0.mean - $0.spread) }, highs = task.map { 100 * ($0.mean + $0.spread) }
        let low = max(0, ((lows.min() ?? 0) / 5).rounded(.down) * 5)
        let high = min(100, ((highs.max() ?? 100) / 5).rounded(.up) * 5)
        return (low, max(high, low + 5))
    }

    /// The figure as SVG text.
    public func svg() -> String {
        let tasks = self.tasks
        let columnCount = max(1, min(columns, tasks.count))
        let rowCount = (tasks.count + columnCount - 1) / columnCount
        let panelOuterWidth = left + panelWidth + right, panelOuterHeight = top + panelHeight + bottom
        let bases = baseMethods
        let legendPerRow = max(1, Int((Double(columnCount) * panelOuterWidth - 20) / 150))
        let legendRows = (bases.count + legendPerRow - 1) / legendPerRow
        let width = Double(columnCount) * panelOuterWidth
        let height = heading + Double(rowCount) * panelOuterHeight + Double(legendRows) * legendRow + 12
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" viewBox="0 0 \(f(width)) \(f(height))" \
        font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="20" text-anchor="middle" font-size="14">\(escape(title))</text>

        """
        for (index, task) in tasks.enumerated() {
            let originX = Double(index % columnCount) * panelOuterWidth
            let originY = heading + Double(index / columnCount) * panelOuterHeight
            out += "<g class=\"panel\" data-task=\"\(escape(task))\" transform=\"translate(\(f(originX)),\(f(originY)))\">\n"
            out += panel(cells.filter { $0.task == task }, task: task)
            out += "</g>\n"
        }
        let legendY = heading + Double(rowCount) * panelOuterHeight
        for (index, base) in bases.enumerated() {
            let lx = 20 + Double(index % legendPerRow) * 150, ly = legendY + Double(index / legendPerRow) * legendRow + 8
            out += "<circle cx=\"\(f(lx))\" cy=\"\(f(ly))\" r=\"4\" fill=\"\(colour(base))\"/>"
            out += "<text x=\"\(f(lx + 9))\" y=\"\(f(ly + 4))\">\(escape(base))</text>\n"
        }
        return out + "</svg>\n"
    }

    func panel(_ task: [ReportCell], task name: String) -> String {
        let xr = parameterRange(task), yr = accuracyRange(task)
        var out = "<text x=\"\(f(left + panelWidth / 2))\" y=\"\(f(top - 10))\" text-anchor=\"middle\" font-size=\"12\">\(escape(name))</text>\n"
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(panelWidth))\" height=\"\(f(panelHeight))\" fill=\"none\" stroke=\"#444\"/>\n"
        let step = yr.1 - yr.0 > 30 ? 10.0 : 5.0
        var tick = (yr.0 / step).rounded(.up) * step
        while tick <= yr.1 + 1e-9 {
            let ty = y(tick / 100, yr)
            out += "<line x1=\"\(f(left))\" y1=\"\(f(ty))\" x2=\"\(f(left + panelWidth))\" y2=\"\(f(ty))\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(f(left - 5))\" y=\"\(f(ty + 4))\" text-anchor=\"end\">\(Int(tick))</text>\n"
            tick += step
        }
        for decade in Int(xr.0)...Int(xr.1) {
            let tx = left + (Double(decade) - xr.0) / (xr.1 - xr.0) * panelWidth
            out += "<line x1=\"\(f(tx))\" y1=\"\(f(top))\" x2=\"\(f(tx))\" y2=\"\(f(top + panelHeight))\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(f(tx))\" y=\"\(f(top + panelHeight + 15))\" text-anchor=\"middle\">\(Self.decadeLabel(decade))</text>\n"
        }
        out += "<text x=\"\(f(left + panelWidth / 2))\" y=\"\(f(top + panelHeight + 32))\" text-anchor=\"middle\">trainable parameters</text>\n"
        out += "<text transform=\"translate(14,\(f(top + panelHeight / 2))) rotate(-90)\" text-anchor=\"middle\">test accuracy (%)</text>\n"
        for base in baseMethods {
            let family = task.filter { $0.baseMethod == base }.sorted { $0.trainableParameters < $1.trainableParameters }
            guard family.count > 1 else { continue }
            let points = family.map { "\(f(x($0.trainableParameters, xr))),\(f(y($0.mean, yr)))" }.joined(separator: " ")
            out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(colour(base))\" stroke-width=\"1.2\"/>\n"
        }
        for cell in task {
            let cx = x(cell.trainableParameters, xr), cy = y(cell.mean, yr)
            if cell.accuracies.count > 1 {
                out += "<line class=\"spread\" x1=\"\(f(cx))\" y1=\"\(f(y(cell.mean - cell.spread, yr)))\" x2=\"\(f(cx))\" "
                    + "y2=\"\(f(y(cell.mean + cell.spread, yr)))\" stroke=\"\(colour(cell.baseMethod))\"/>\n"
            }
            let summary = String(format: "%@: %.1f%%", cell.method, 100 * cell.mean)
                + (cell.accuracies.count > 1 ? String(format: " ± %.1f over %d seeds", 100 * cell.spread, cell.accuracies.count) : "")
                + ", \(BenchmarkSuite.grouped(cell.trainableParameters)) parameters, lr \(String(format: "%g", Double(cell.learningRate)))"
            out += "<circle class=\"point\" data-method=\"\(escape(cell.method))\" cx=\"\(f(cx))\" cy=\"\(f(cy))\" r=\"4\" "
                + "fill=\"\(colour(cell.baseMethod))\" stroke=\"white\"><title>\(escape(summary))</title></circle>\n"
        }
        return out
    }

    static func decadeLabel(_ decade: Int) -> String {
        switch decade {
        case ..<3: return "\(Int(pow(10, Double(max(decade, 0)))))"
        case 3..<6: return "\(Int(pow(10, Double(decade - 3))))k"
        case 6..<9: return "\(Int(pow(10, Double(decade - 6))))M"
        default: return "\(Int(pow(10, Double(decade - 9))))G"
        }
    }

    func f(_ value: Double) -> String { String(format: "%.1f", value) }

    func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
