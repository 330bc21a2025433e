import BLASBinding
import Engine
import Layers
import Models

/// An adapter whose effect can be folded into its layer's weights (and taken out again).
public protocol MergeableAdapter: LinearAdapter {
    /// Writes the adapted weights into `layer` (whose adapter must be detached afterwards).
    func merge(into layer: Linear)
    /// Restores the weights `merge` changed.
    func unmerge(from layer: Linear)
}

extension LoRAAdapter: MergeableAdapter {
    /// W += (alpha / r) B A, one GEMM accumulating into W (undone by subtraction, as Hugging Face peft does;
    /// exact up to float rounding).
    public func merge(into layer: Linear) { accumulate(into: layer, sign: 1) }
    public func unmerge(from layer: Linear) { accumulate(into: layer, sign: -1) }

    private func accumulate(into layer: Linear, sign: Float) {
        let rank = a.shape[0]
        gemm(transA: false, transB: false, m: layer.outFeatures, n: layer.inFeatures, k: rank, alpha: sign * scale,
             a: b.data, lda: rank, b: a.data, ldb: layer.inFeatures, beta: 1, c: layer.weight.data, ldc: layer.inFeatures)
    }
}

extension ShiraAdapter: MergeableAdapter {
    /// Scatters W0 + alpha s into the mask positions, keeping the overwritten values so unmerge restores the base
    /// bit for bit. This scatter is also what makes switching SHiRA adapters fast.
    public func merge(into layer: Linear) {
        let weight = layer.weight.data, alpha = scale, s = values.data
        if savedBaseValues.count != flatPositions.count { savedBaseValues = [Float](repeating: 0, count: flatPositions.count) }
        flatPositions.withUnsafeBufferPointer { positions in
            savedBaseValues.withUnsafeMutableBufferPointer { saved in
                for i in 0..<positions.count {
                    let position = positions[i]
                    saved[i] = weight[position]
                    weight[position] = saved[i] + alpha * s[i]
                }
            }
        }
    }
    public func unmerge(from layer: Linear) {
        let weight = layer.weight.data
        flatPositions.withUnsafeBufferPointer { positions in
            savedBaseValues.withUnsafeBufferPointer { saved in
                for i in 0..<min(positions.count, saved.count) { weight[positions[i]] = saved[i] }
            }
        }
    }
}

extension NEATAdapter: MergeableAdapter {
    /// W' = W0 + s Q relu(P W0), computed from the original W0, which is kept for unmerge.
    public func merge(into layer: Linear) {
        savedWeight = layer.weight.copy()
        Autograd.withoutGrad { layer.weight.assign(layer.weight + deltaWeight(original: savedWeight!)) }
    }
    public func unmerge(from layer: Linear) {
        if let savedWeight { layer.weight.assign(savedWeight) }
    }
}

extension RLRRAdapter: MergeableAdapter {
    /// W' = (1 + u v^T) * W, b' = b + f; the originals are kept for unmerge.
    public func merge(into layer: Linear) {
        savedWeight = layer.weight.copy()
        savedBias = layer.bias?.copy()
        Autograd.withoutGrad {
            layer.weight.assign(mergedWeight(layer.weight))
            layer.bias?.assign(layer.bias! + shift)
        }
    }
    public func unmerge(from layer: Linear) {
        if let savedWeight { layer.weight.assign(savedWeight) }
        if let savedBias { layer.bias?.assign(savedBias) }
    }
}

/// Merging a classifier's adapters into its base weights, and unmerging them (last merged, first unmerged).
public enum Merging {
    /// Folds every adapter into the base weights; afterwards the model runs as a plain network.
    /// Throws (changing nothing) when an adapter cannot be merged (VPT prompts, bottleneck adapters).
    public static func merge(_ model: any Classifier) throws {
        if let vision = model.visionBackbone {
            if vision.deepPrompts != nil { throw ModuleError("VPT prompts add tokens and cannot be merged into weights") }
            if vision.blocks.contains(where: { $0.mlpAdapter != nil }) {
                throw ModuleError("bottleneck adapters add a branch and cannot be merged into weights")
            }
        }
        try mergeLinearAdapters(in: model)
        for (_, module) in model.namedModules() {
            if let host = module as? any ScaleShiftHost, let ssf = host.scaleShift {
                // (W, b) followed by z * s + t equals (s W, s b + t), channel by channel.
                host.mergedScaleShift = (ssf, host.weight.copy(), host.bias.copy())
                let width = host.bias.count
                Autograd.withoutGrad {
                    host.weight.assign(host.weight.reshaped([width, -1]) * ssf.scale.reshaped([width, 1]))
                    host.bias.assign(host.bias * ssf.scale + ssf.shift)
                }
                host.scaleShift = nil
            }
        }
    }

    /// Folds the adapter of every `Linear` layer of any module into the layer's weights (LoRA, SHiRA, NEAT,
    /// RLRR); afterwards the layers run as plain ones. Throws, changing nothing, when an adapter cannot be merged.
    public static func mergeLinearAdapters(in module: any Module) throws {
        let modules = module.namedModules()
        for (path, module) in modules {
            if let layer = module as? Linear, let adapter = layer.adapter, !(adapter is any MergeableAdapter) {
                throw ModuleError("the adapter on '\(path)' cannot be merged")
            }
        }
        for (_, module) in modules {
            if let layer = module as? Linear, let adapter = layer.adapter as? any MergeableAdapter {
                adapter.merge(into: layer)
                layer.adapter = nil
                layer.mergedAdapters.append(adapter)
            }
        }
    }

    /// Restores the weights of every `Linear` layer of any module and re-attaches the adapters merged into it.
    public static func unmergeLinearAdapters(in module: any Module) {
        for (_, module) in module.namedModules().reversed() {
            if let layer = module as? Linear, let adapter = layer.mergedAdapters.popLast() as? any MergeableAdapter {
                adapter.unmerge(from: layer)
                layer.adapter = adapter
            }
        }
    }

    /// Restores the base weights and re-attaches the adapters merged by `merge`.
    public static func unmerge(_ model: any Classifier) {
        unmergeLinearAdapters(in: model)
        for (_, module) in model.namedModules().reversed() {
            if let host = module as? any ScaleShiftHost, let (ssf, weight, bias) = host.mergedScaleShift {
                host.weight.assign(weight)
                host.bias.assign(bias)
                host.scaleShift = ssf
                host.mergedScaleShift = nil
            }
        }
    }
}
