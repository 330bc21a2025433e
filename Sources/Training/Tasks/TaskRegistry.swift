import Foundation

/// The 1k-protocol tasks by name. Every task has 800 training and 200 validation examples drawn balanced per
/// class with `seed` (default 0) and a fixed test set that never depends on the seed. Loading is deterministic:
/// the same name and seed give identical data on every run and machine.
public enum TaskRegistry {
    /// Training examples per task.
    public static let trainCount = 800
    /// Validation examples per task.
    public static let validationCount = 200

    /// All task names, images first.
    public static let names = [FashionMNISTTask.name, DigitsTask.name, ShapesLocationTask.name,
                               ShapesOrientationTask.name, ObjectCountTask.name, FortunesTask.name]

    /// Whether `name` is an image or a text task.
    ///
    /// - Throws: ``TaskError`` listing the valid names when `name` is unknown.
    public static func kind(of name: String) throws -> TaskKind {
        switch name {
        case FashionMNISTTask.name, DigitsTask.name, ShapesLocationTask.name, ShapesOrientationTask.name,
             ObjectCountTask.name:
            return .image
        case FortunesTask.name:
            return .text
        default:
            throw unknown(name)
        }
    }

    /// A one-line description of the task (for `fortunes-1k` it names the categories kept and dropped when the
    /// fortune files can be read), or a note listing the valid names when `name` is unknown.
    public static func summary(of name: String) -> String {
        switch name {
        case FashionMNISTTask.name: return FashionMNISTTask.summary
        case DigitsTask.name: return DigitsTask.summary
        case ShapesLocationTask.name: return ShapesLocationTask.recipe.summary
        case ShapesOrientationTask.name: return ShapesOrientationTask.recipe.summary
        case ObjectCountTask.name: return ObjectCountTask.recipe.summary
        case FortunesTask.name:
            return (try? FortunesTask.select()).map { FortunesTask.summary($0) } ?? FortunesTask.genericSummary
        default: return unknown(name).description
        }
    }

    /// Loads an image task; `seed` changes only which examples are train and validation.
    ///
    /// - Throws: ``TaskError`` when the name is unknown (listing the valid ones) or is a text task;
    ///   ``DataReaderError`` naming the file when a data file is missing or corrupt.
    public static func image(named name: String, seed: UInt64 = 0) throws -> ImageClassificationTask {
        switch name {
        case FashionMNISTTask.name: return try FashionMNISTTask.load(seed: seed)
        case DigitsTask.name: return try DigitsTask.load(seed: seed)
        case ShapesLocationTask.name: return StructuredTaskBuilder.build(ShapesLocationTask.recipe, seed: seed)
        case ShapesOrientationTask.name: return StructuredTaskBuilder.build(ShapesOrientationTask.recipe, seed: seed)
        case ObjectCountTask.name: return StructuredTaskBuilder.build(ObjectCountTask.recipe, seed: seed)
        default:
            if try kind(of: name) == .text {
                throw TaskError("task '\(name)' is a text task; load it with TaskRegistry.text(named:)")
            }
            throw unknown(name)
        }
    }

    /// Loads a text task; `seed` changes only which examples are train and validation.
    ///
    /// - Throws: ``TaskError`` when the name is unknown (listing the valid ones) or is an image task, or when
    ///   no category has enough entries; ``DataReaderError`` naming the file when a fortune file is missing.
    public static func text(named name: String, seed: UInt64 = 0) throws -> TextClassificationTask {
        switch name {
        case FortunesTask.name: return try FortunesTask.load(seed: seed)
        default:
            if try kind(of: name) == .image {
                throw TaskError("task '\(name)' is an image task; load it with TaskRegistry.image(named:)")
            }
            throw unknown(name)
        }
    }

    private static func unknown(_ name: String) -> TaskError {
        TaskError("unknown task '\(name)'; valid tasks: \(names.joined(separator: ", "))")
    }
}
