import XCTest
import Engine
import Layers
import Methods
import Models

/// Merging adapters into the base weights and unmerging them.
final class MergingTests: XCTestCase {
    func trained(_ method: String) throws -> ImageClassifier {
        let model = tinyClassifier()
        var options: ConfigObject = [:]
        options["density"] = 0.1
        try MethodRegistry.method(named: method, config: options).apply(to: model)
        for seed in 0..<2 { trainOneStep(model, images: tinyImages(seed: UInt64(seed)), labels: [1, 2], rate: 0.05) }
        return model
    }

    func testMergedEqualsUnmergedAndUnmergeRestoresTheBase() throws {
        for method in ["lora", "shira", "neat", "rlrr", "bitfit", "layernorm"] {
            let model = try trained(method)
            let images = tinyImages(seed: 4)
            let adapted = logits(model, images)
            let baseBefore = Dictionary(uniqueKeysWithValues: model.vision.namedParameters()
                .filter { !$0.1.requiresGrad }.map { ($0.0, $0.1.values) })
            try Merging.merge(model)
            XCTAssertTrue(model.vision.namedModules().allSatisfy { ($0.1 as? Linear)?.adapter == nil }, method)
            assertAllClose(logits(model, images), adapted, tolerance: 1e-5, "\(method): merged vs unmerged")
            // The merged model is a plain network: its state dict loads into a fresh classifier with no method.
            let plain = tinyClassifier(seed: 1)
            try plain.load(model.stateDict(), strict: true)
            assertAllClose(logits(plain, images), adapted, tolerance: 1e-5, "\(method): plain model from merged weights")
            Merging.unmerge(model)
            assertAllClose(logits(model, images), adapted, tolerance: 1e-5, "\(method): after unmerge")
            for (name, parameter) in model.vision.namedParameters() where !parameter.requiresGrad {
                guard let before = baseBefore[name] else { continue }
                if method == "shira" || method == "neat" || method == "rlrr" {
                    XCTAssertEqual(parameter.values, before, "\(method): \(name) not restored bit for bit")
                } else {
                    assertAllClose(parameter.values, before, tolerance: 1e-6, "\(method): \(name) not restored")
                }
            }
        }
    }

    func testUnmergeableAdaptersAreRefused() throws {
        for method in ["vpt", "adapter"] {
            let model = try trained(method)
            XCTAssertThrowsError(try Merging.merge(model), method) { error in
                XCTAssertTrue("\(error)".contains("cannot be merged"), "\(error)")
            }
        }
    }
}
