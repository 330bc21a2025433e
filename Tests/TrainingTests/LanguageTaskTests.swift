import XCTest
import Training

/// The language tasks: answers right by construction (recomputed from the prompt), splits of the promised sizes,
/// test fixed across seeds and disjoint from training, train and validation moved by the seed; exact-match scoring.
final class LanguageTaskTests: XCTestCase {
    /// The numbers or words of a prompt, between its colon (or "is") and the instruction that ends it.
    func operands(_ prompt: String, after marker: String, before end: String) -> String {
        let start = prompt.range(of: marker)!.upperBound, stop = prompt.range(of: end)!.lowerBound
        return String(prompt[start..<stop]).trimmingCharacters(in: .whitespaces)
    }

    func testAnswersAreRightAndSplitsBehave() throws {
        for name in LanguageTasks.names {
            let task = try LanguageTasks.task(named: name, seed: 0)
            XCTAssertEqual([task.train.count, task.validation.count, task.test.count], [800, 100, 200], name)
            for example in task.train.prefix(50) + task.test.prefix(50) {
                switch name {
                case "add-lm":
                    let numbers = operands(example.prompt, after: "What is", before: "?").split(separator: "+").map {
                        Int($0.trimmingCharacters(in: .whitespaces))!
                    }
                    XCTAssertEqual(example.answer, "\(numbers[0] + numbers[1])", example.prompt)
                case "reverse-lm":
                    let words = operands(example.prompt, after: "order:", before: ". Answer").split(separator: " ")
                    XCTAssertEqual(example.answer, words.reversed().joined(separator: " "), example.prompt)
                default:
                    let numbers = operands(example.prompt, after: "largest:", before: ". Answer").split(separator: ",").map {
                        Int($0.trimmingCharacters(in: .whitespaces))!
                    }
                    XCTAssertEqual(example.answer, numbers.sorted().map(String.init).joined(separator: ", "), example.prompt)
                }
            }
            let other = try LanguageTasks.task(named: name, seed: 1)
            XCTAssertEqual(other.test, task.test, "\(name): the test set does not depend on the seed")
            XCTAssertNotEqual(other.train, task.train, "\(name): the seed draws another training split")
            XCTAssertTrue(Set(task.train.map(\.prompt)).isDisjoint(with: task.test.map(\.prompt)), "\(name): no test prompt in training")
            XCTAssertTrue(Set(task.train.map(\.prompt)).isDisjoint(with: task.validation.map(\.prompt)), name)
            XCTAssertEqual(LanguageTask.instructions(task.train).first,
                           .promptCompletion(prompt: task.train[0].prompt, completion: task.train[0].answer))
        }
        XCTAssertThrowsError(try LanguageTasks.task(named: "chess-lm")) { XCTAssertTrue("\($0)".contains("add-lm, reverse-lm, sort-lm")) }
    }

    func testExactMatchTrimsSpaceAndAFinalPeriodOnly() {
        XCTAssertTrue(LanguageTask.isCorrect(" 1395.\n", answer: "1395"))
        XCTAssertTrue(LanguageTask.isCorrect("window orange", answer: "window orange"))
        XCTAssertFalse(LanguageTask.isCorrect("1395 is the answer", answer: "1395"))
        XCTAssertFalse(LanguageTask.isCorrect("13950", answer: "1395"))
        XCTAssertFalse(LanguageTask.isCorrect("", answer: "1395"))
    }
}
