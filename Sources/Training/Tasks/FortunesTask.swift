import Engine
import Foundation

/// `fortunes-1k`: topic classification of Debian fortune cookies. Entries are whitespace-normalised and kept
/// when 20...600 characters long; texts found in two categories are dropped. A category is dropped when it has
/// fewer usable entries than its train + validation share plus ``minimumTestPerClass``. The test set (up to
/// 100 per class) is set aside first with a fixed seed; train and validation are drawn from the rest with the
/// task seed.
enum FortunesTask {
    static let name = "fortunes-1k"
    static let shortestCharacters = 20
    static let longestCharacters = 600
    static let testPerClass = 100
    /// Fewest test texts a kept category must still have after giving its train + validation share.
    static let minimumTestPerClass = 5

    /// The categories kept, their usable texts, and a sentence on the dropped ones.
    struct Selection {
        var categories: [String]
        var texts: [[String]]
        var droppedNote: String
    }

    /// Reads, cleans and selects the categories.
    static func select(directory: URL = Fortunes.defaultDirectory) throws -> Selection {
        let candidates = Fortunes.topicalCategories
        var cleaned: [[String]] = []
        var categoriesOfText: [String: Int] = [:]
        for category in candidates {
            var seen = Set<String>()
            let texts = try Fortunes.entries(category: category, directory: directory).map(normalised).filter {
                (shortestCharacters...longestCharacters).contains($0.count) && seen.insert($0).inserted
            }
            for text in texts { categoriesOfText[text, default: 0] += 1 }
            cleaned.append(texts)
        }
        // A text under two topics has no single right label.
        cleaned = cleaned.map { $0.filter { categoriesOfText[$0] == 1 } }

        var kept = Array(candidates.indices)
        var dropped: [String] = []
        while true {
            let needed = zip(BalancedDraw.quotas(total: TaskRegistry.trainCount, classCount: kept.count),
                             BalancedDraw.quotas(total: TaskRegistry.validationCount, classCount: kept.count))
                .map { $0 + $1 + minimumTestPerClass }
            let short = kept.indices.filter { cleaned[kept[$0]].count < needed[$0] }
            if short.isEmpty { break }
            for position in short {
                let index = kept[position]
                dropped.append("\(candidates[index]) (only \(cleaned[index].count) usable entries, \(needed[position]) needed)")
            }
            kept = kept.enumerated().filter { !short.contains($0.offset) }.map(\.element)
            guard !kept.isEmpty else {
                throw TaskError("\(name): no fortune category in \(directory.path) has enough usable entries: \(dropped.joined(separator: ", "))")
            }
        }
        let note = dropped.isEmpty ? "" : "; dropped " + dropped.joined(separator: ", ")
        return Selection(categories: kept.map { candidates[$0] }, texts: kept.map { cleaned[$0] }, droppedNote: note)
    }

    /// One-line description naming the kept and dropped categories.
    static func summary(_ selection: Selection, testCount: Int? = nil) -> String {
        let test = testCount.map { "test \($0) (up to \(testPerClass) per class, fixed)" } ?? "test up to \(testPerClass) per class (fixed)"
        return "Debian fortunes topic classification, \(selection.categories.count) classes (\(selection.categories.joined(separator: ", ")))\(selection.droppedNote); entries of \(shortestCharacters)-\(longestCharacters) characters, whitespace collapsed; 800 train + 200 val (balanced, seeded), \(test)"
    }

    /// Summary without reading the files, for when they cannot be read.
    static let genericSummary = "Debian fortunes topic classification over computers, food, law, medicine, politics, science, sports, education, love (categories too small for their share are dropped); 800 train + 200 val (balanced, seeded), test up to 100 per class (fixed)"

    static func load(seed: UInt64, directory: URL = Fortunes.defaultDirectory) throws -> TextClassificationTask {
        let selection = try select(directory: directory)
        let classCount = selection.categories.count
        let trainQuotas = BalancedDraw.quotas(total: TaskRegistry.trainCount, classCount: classCount)
        let validationQuotas = BalancedDraw.quotas(total: TaskRegistry.validationCount, classCount: classCount)

        var testTexts: [String] = [], testLabels: [Int] = []
        var pools: [[String]] = []
        var testGenerator = TaskRandomness.generator(task: name, purpose: "test")
        for (label, texts) in selection.texts.enumerated() {
            var order = texts
            testGenerator.taskShuffle(&order)
            let testCount = min(testPerClass, texts.count - trainQuotas[label] - validationQuotas[label])
            testTexts += order[0..<testCount]
            testLabels += [Int](repeating: label, count: testCount)
            pools.append(Array(order[testCount...]))
        }

        let poolTexts = pools.flatMap { $0 }
        let poolLabels = pools.enumerated().flatMap { [Int](repeating: $0.offset, count: $0.element.count) }
        var generator = TaskRandomness.generator(task: name, purpose: "train-validation", seed)
        let drawn = try BalancedDraw.draw(candidatesByClass: BalancedDraw.indicesByClass(poolLabels, classCount: classCount),
                                          quotas: [trainQuotas, validationQuotas], generator: &generator,
                                          context: "\(name) (\(directory.path))")
        func split(_ indices: [Int]) -> TextSplit {
            TextSplit(texts: indices.map { poolTexts[$0] }, labels: indices.map { poolLabels[$0] })
        }
        return TextClassificationTask(name: name, summary: summary(selection, testCount: testTexts.count),
                                      classNames: selection.categories, train: split(drawn[0]),
                                      validation: split(drawn[1]), test: TextSplit(texts: testTexts, labels: testLabels))
    }

    /// Collapses every run of whitespace (spaces, tabs, newlines) into one space and trims the ends.
    static func normalised(_ text: String) -> String {
        text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
}
