import XCTest
import Engine
import Methods
import Models

func tinyClassifier(seed: UInt64 = 1) -> ImageClassifier {
    ImageClassifier(vision: VisionTransformer(tinyVision, seed: seed), classes: 3, seed: seed)
}

func tinyImages(seed: UInt64 = 5) -> Tensor {
    var generator = RandomGenerator(seed: seed)
    return Tensor.randomNormal([2, 3, 16, 16], generator: &generator)
}

func logits(_ model: any Classifier, _ images: Tensor) -> [Float] {
    Autograd.withoutGrad { model.logits(.images(images)).values }
}

func assertAllClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5, _ message: String = "",
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(worst, tolerance, "\(message): max difference \(worst)", file: file, line: line)
}

/// One AdamW-like plain gradient step on every trainable parameter with a cross-entropy loss.
func trainOneStep(_ model: any Classifier, images: Tensor, labels: [Int], rate: Float = 0.1) {
    let loss = crossEntropy(model.logits(.images(images)), labels: labels)
    loss.backward()
    for (_, parameter) in model.trainableParameters {
        guard let grad = parameter.grad else { continue }
        for i in 0..<parameter.count { parameter.data[i] -= rate * grad.data[i] }
        parameter.grad = nil
    }
}
