import Checkpoints
import Collectives
import Engine
import Foundation
import Methods

/// Data parallelism over the ranks of `group` (see `Trainer.group`): each rank runs its shard of every global batch,
/// the trainable gradients are summed in one allreduce per step, and the optimiser then makes the same update on
/// every rank. With one rank none of this runs.
extension Trainer {
    /// The rows of a batch of `count` that this rank takes: a contiguous block, the blocks of all ranks in order.
    func shard(of count: Int) -> Range<Int> {
        (group.rank * count / group.size)..<((group.rank + 1) * count / group.size)
    }

    /// Sums, over all ranks and in one buffer, the trainable gradients (each rank's already scaled by its share of
    /// the batch) followed by `statistics`; returns the summed statistics. A parameter no rank has a gradient for
    /// keeps none, as in a single process.
    func reduceGradients(statistics: [Float], step: Int) throws -> [Float] {
        let groups = optimizer.groups
        let gradientCount = groups.reduce(0) { $0 + $1.parameter.count }
        let total = gradientCount + groups.count + statistics.count
        if reductionBuffer.count < total { reductionBuffer = [Float](repeating: 0, count: total) }
        try reductionBuffer.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            var offset = 0
            for (index, entry) in groups.enumerated() {
                let count = entry.parameter.count
                if let grad = entry.parameter.grad {
                    (base + offset).update(from: grad.data, count: count)
                    base[gradientCount + index] = 1
                } else {
                    (base + offset).update(repeating: 0, count: count)
                    base[gradientCount + index] = 0
                }
                offset += count
            }
            for (index, value) in statistics.enumerated() { base[gradientCount + groups.count + index] = value }
            let started = Date()
            try group.allreduceSum(base, count: total, what: "the gradient allreduce of step \(step + 1)")
            reductionSeconds += Date().timeIntervalSince(started)
            reductionBytes += total * 4
            reducedSteps += 1
            offset = 0
            for (index, entry) in groups.enumerated() {
                let count = entry.parameter.count
                if base[gradientCount + index] > 0 {
                    if entry.parameter.grad == nil { entry.parameter.grad = Tensor(zeros: entry.parameter.shape) }
                    entry.parameter.grad!.data.update(from: base + offset, count: count)
                }
                offset += count
            }
        }
        return Array(reductionBuffer[(gradientCount + groups.count)..<total])
    }

    /// Correct predictions on the first `count` examples of `source`, the batches dealt out over the ranks and the
    /// counts summed.
    func distributedCorrect(_ source: BatchSource, count: Int, batchSize: Int) throws -> Int {
        let correct = correctCount(source, count: count, batchSize: batchSize) { $0 % group.size == group.rank }
        return Int(try group.allreduceSum([Double(correct)], what: "the evaluation count").first ?? 0)
    }

    /// Correct predictions on the batches of the first `count` examples that `take` accepts (by batch number).
    func correctCount(_ source: BatchSource, count: Int, batchSize: Int, take: (Int) -> Bool) -> Int {
        var correct = 0
        var generator = RandomGenerator(seed: 0)
        var batch = 0, start = 0
        while start < count {
            if take(batch) {
                let indices = Array(start..<min(start + batchSize, count))
                let logits = Autograd.withoutGrad { model.logits(source.batch(indices, augment: false, generator: &generator)) }
                correct += zip(argmaxRows(logits), indices.map { source.labels[$0] }).filter { $0 == $1 }.count
            }
            start += batchSize
            batch += 1
        }
        return correct
    }

    /// What rank 0 sends the others at the start: its run state (as a checkpoint holds it) and the names and
    /// shapes of the tensors that follow, with fingerprints to check the ranks agree on everything else.
    struct StartState: Codable {
        var metadata: [String: String]
        var names: [String]
        var shapes: [[Int]]
        /// `weightFingerprint` of the whole model once rank 0's state is in, and a hash of the method's masks.
        var fingerprint: String
        var structure: String
    }

    /// A hash of the method's integer structure (SHiRA's mask positions, TTC's and Pear's selections).
    var structureDigest: String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for (name, tensor) in method.structureTensors(in: model).sorted(by: { $0.key < $1.key }) {
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            for value in tensor.values { hash = (hash ^ UInt64(UInt32(bitPattern: value))) &* 0x0000_0100_0000_01B3 }
        }
        return String(hash, radix: 16)
    }

    /// Makes every rank start from rank 0's state: its initialisation on a new run, its checkpoint on a resume
    /// (only rank 0 reads files). Then checks that the ranks hold the same model and masks and were started with
    /// the same configuration, naming the rank that differs.
    func synchronizeWithLeader() throws {
        guard group.isDistributed else { return }
        var header: StartState?
        var tensors: [String: Tensor] = [:]
        if group.isLeader {
            let contents = try checkpointContents()
            tensors = contents.tensors
            let names = tensors.keys.sorted()
            header = StartState(metadata: contents.metadata, names: names, shapes: names.map { tensors[$0]!.shape },
                                fingerprint: weightFingerprint(model), structure: structureDigest)
        }
        let bytes = try group.broadcast(header.map { Array(try jsonData($0)) } ?? [], what: "rank 0's start state")
        let state: StartState
        do { state = try JSONDecoder().decode(StartState.self, from: Data(bytes)) } catch {
            throw TrainingError("rank \(group.rank): the start state rank 0 sent is not readable: \(error)")
        }
        guard state.names.count == state.shapes.count, state.shapes.allSatisfy({ $0.allSatisfy { $0 >= 0 } }) else {
            throw TrainingError("rank \(group.rank): the start state rank 0 sent lists \(state.names.count) names for \(state.shapes.count) shapes")
        }
        if !group.isLeader {
            for (name, shape) in zip(state.names, state.shapes) { tensors[name] = Tensor(zeros: shape) }
        }
        for name in state.names {
            let tensor = tensors[name]!
            try group.broadcast(tensor.data, count: tensor.count, what: "rank 0's tensor '\(name)'")
        }
        if !group.isLeader {
            guard let text = state.metadata["peft_training_state"],
                  let decoded = try? JSONDecoder().decode(CheckpointState.self, from: Data(text.utf8)) else {
                throw TrainingError("rank \(group.rank): rank 0 sent no training state")
            }
            let source = "rank \(group.rank): the state rank 0 sent"
            guard decoded.configuration == configuration else {
                let changes = (try? Self.differences(from: decoded.configuration, to: configuration)) ?? []
                throw TrainingError("rank \(group.rank) was started with other settings than rank 0 (\(changes.joined(separator: "; ")), 'checkpoint' meaning rank 0); every rank must run the same command")
            }
            try decoded.validate(path: source)
            try restore(decoded, tensors: tensors, stageJSON: state.metadata["peft_stage"], source: source)
        }
        // Rank 0's own values are what it sent; the others compute theirs once.
        let fingerprint = group.isLeader ? state.fingerprint : weightFingerprint(model)
        let structure = group.isLeader ? state.structure : structureDigest
        let agree = structure == state.structure && fingerprint == state.fingerprint
        let disagreeing = try group.allreduceSum([agree ? 0 : 1], what: "the start-state check").first ?? 0
        if !agree {
            throw TrainingError("rank \(group.rank): after taking rank 0's trainable state this rank's model differs from rank 0's (\(structure == state.structure ? "frozen weights" : "method masks or selections") differ; weights \(fingerprint) against \(state.fingerprint)); every rank must load the same pretrained files and run the same command")
        }
        if disagreeing > 0 {
            throw TrainingError("rank \(group.rank): \(Int(disagreeing)) other rank(s) hold a model that differs from rank 0's (they name themselves); every rank must load the same pretrained files and run the same command")
        }
    }
}

extension Trainer {
    /// After a staged method's switch (made by every rank from the same data): rank 0's new trainable values on
    /// every rank, and a check that all ranks selected the same structure.
    func synchronizeStage() throws {
        guard group.isDistributed else { return }
        for (name, parameter) in model.trainableParameters {
            try group.broadcast(parameter.data, count: parameter.count, what: "rank 0's stage-2 tensor '\(name)'")
        }
        let own = structureDigest
        let leader = String(decoding: try group.broadcast(Array(own.utf8), what: "rank 0's stage-2 structure"), as: UTF8.self)
        let disagreeing = try group.allreduceSum([own == leader ? 0 : 1], what: "the stage-2 check").first ?? 0
        if disagreeing > 0 {
            throw TrainingError("rank \(group.rank): \(Int(disagreeing)) rank(s) selected a different stage-2 structure than rank 0 (\(own == leader ? "not this one" : "this one")); the ranks must run on CPUs that compute the scores alike")
        }
    }
}
