import XCTest
import Engine
import Layers
import Methods
import Models
import Training

/// A method defined outside the library: the head and the biases of the last block train.
struct HeadAndLastBiases: PEFTMethod {
    let name = "head-last-biases"
    func apply(to model: any Classifier) throws {
        model.freezeBackbone()
        let last = (model.visionBackbone?.blocks.count ?? 1) - 1
        for (path, parameter) in model.namedParameters() where path.contains("layer.\(last).") && path.hasSuffix(".bias") {
            parameter.requiresGrad = true
        }
    }

    static let descriptor = MethodDescriptor(
        name: "head-last-biases", summary: "test method: head and the last block's biases", defaultLearningRate: 5e-3,
        make: { HeadAndLastBiases() })
}

/// Methods are found through their descriptors, and a program's own method works everywhere a built-in one does.
final class MethodRegistryTests: XCTestCase {
    override class func setUp() {
        try? MethodRegistry.register(HeadAndLastBiases.descriptor)
    }

    func testAUserDefinedMethodTrainsSavesAndLoadsByName() throws {
        XCTAssertTrue(MethodRegistry.names.contains("head-last-biases"))
        XCTAssertThrowsError(try MethodRegistry.register(HeadAndLastBiases.descriptor)) { error in
            XCTAssertTrue("\(error)".contains("already registered"), "\(error)")
        }
        XCTAssertEqual(TrainingConfiguration.defaultLearningRate(method: "head-last-biases"), 5e-3)
        let out = TinyTrainerFixture.temporaryDirectory("user-method", for: self)
        let trainer = try TinyTrainerFixture.makeTrainer(method: "head-last-biases", epochs: 1, learningRate: 3e-3,
                                                         horizontalFlip: false, out: out)
        let result = try trainer.run()
        XCTAssertGreaterThan(result.trainableParameters, 2 * 16 + 2, "the head and some biases train")
        let adapter = out.appendingPathComponent("adapter")
        let configuration = try AdapterFiles.configuration(in: adapter)
        XCTAssertEqual(configuration.peftType, "SWIFTPEFT_HEAD-LAST-BIASES")
        XCTAssertEqual(configuration.swiftpeft.method, "head-last-biases")
        let restored = ImageClassifier(vision: VisionTransformer(TinyTrainerFixture.vision, seed: 3), classes: 2)
        try AdapterFiles.load(from: adapter, into: restored)
        var generator = RandomGenerator(seed: 8)
        let images = Tensor.randomNormal([2, 3, 16, 16], generator: &generator)
        let expected = Autograd.withoutGrad { trainer.model.logits(.images(images)).values }
        XCTAssertEqual(Autograd.withoutGrad { restored.logits(.images(images)).values }, expected)
    }

    func testOptionAssignmentsAreCheckedAgainstTheMethodsOptions() throws {
        let lora = try MethodRegistry.descriptor(named: "lora")
        let options = try lora.applying(["r=4", "lora_alpha=16", "target_modules=re:.*query", "use_dora=true"], to: [:] as ConfigObject)
        let typed = try LoRA.Config.decoded(from: options)
        XCTAssertEqual(typed.r, 4)
        XCTAssertEqual(typed.loraAlpha, 16)
        XCTAssertEqual(typed.targetModules, .pattern(".*query"))
        XCTAssertTrue(typed.useDoRA)
        XCTAssertEqual(typed.loraDropout, 0, "an option not assigned keeps its default")
        XCTAssertThrowsError(try lora.applying(["rank=4"], to: [:] as ConfigObject)) { error in
            XCTAssertTrue("\(error)".contains("has no option 'rank'") && "\(error)".contains("r (int)"), "\(error)")
        }
        XCTAssertThrowsError(try lora.applying(["r=4.5"], to: [:] as ConfigObject)) { error in
            XCTAssertTrue("\(error)".contains("option r takes an int, got '4.5'"), "\(error)")
        }
        XCTAssertThrowsError(try lora.applying(["lora_alpha=nan"], to: [:] as ConfigObject)) { error in
            XCTAssertTrue("\(error)".contains("takes a float"), "\(error)")
        }
        XCTAssertThrowsError(try lora.applying(["r"], to: [:] as ConfigObject)) { error in
            XCTAssertTrue("\(error)".contains("expected key=value"), "\(error)")
        }
        // Every built-in option names a real field: a value of its kind lands in the options.
        for descriptor in MethodRegistry.all {
            let defaults = descriptor.defaults()
            for spec in descriptor.options {
                let text: String
                switch spec.kind {
                case .integer: text = "3"
                case .real: text = "0.25"
                case .boolean: text = defaults[spec.key] == "true" ? "false" : "true"
                case .text: text = spec.key == "mask_type" ? "wm" : spec.key == "score" ? "l1" : "nearest"
                case .targets: text = defaults[spec.key] == "all-linear" ? "query" : "all-linear"
                }
                let changed = try descriptor.applying(["\(spec.key)=\(text)"], to: [:] as ConfigObject)
                XCTAssertNotEqual(changed[spec.key], descriptor.defaultConfig[spec.key], "\(descriptor.name).\(spec.key) changed nothing")
            }
        }
    }
}
