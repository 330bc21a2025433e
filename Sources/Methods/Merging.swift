import Engine
import Layers
import Models

/// An adapter whose effect can be folded into its layer's weights (and taken out again).
public protocol MergeableAdapter: LinearAdapter {
    /// Writes the adapted weights into `layer` (whose adapter must be detached afterwards).
    func merge(into layer: Linear)
    /// Restores the weights `merge` changed.
    func unmerge(from layer: Linear)
    /// Whether `unmerge` puts back the very values `merge` overwrote (saved before the merge), so a merge and
    /// unmerge leave the weights bit-identical. False when `unmerge` subtracts what `merge` added (float32
    /// rounding makes that inexact): a caller that needs the exact base restores it from its own copy.
    var unmergeRestoresExactly: Bool { get }
}

extension MergeableAdapter {
    public var unmergeRestoresExactly: Bool { false }
}

/// An output adapter whose effect can be folded into its host layer's weight and bias (and taken out again).
public protocol MergeableOutputAdapter: OutputAdapter {
    /// Writes the adapted weight and bias into `layer` (whose output adapter must be detached afterwards).
    func merge(into layer: any OutputAdaptable)
    /// Restores the weight and bias `merge` changed.
    func unmerge(from layer: any OutputAdaptable)
}

/// Merging a classifier's adapters into its base weights, and unmerging them (last merged, first unmerged).
public enum Merging {
    /// Folds every adapter into the base weights; afterwards the model runs as a plain network.
    /// Throws (changing nothing) when an adapter cannot be merged (VPT prompts, bottleneck adapters).
    public static func merge(_ model: any Classifier) throws {
        try mergeAdapters(in: model)
    }

    /// Folds every adapter of any module into its base weights: those of `Linear` layers and of `OutputAdaptable`
    /// layers. Throws, changing nothing, when something cannot be merged (inserted tokens, block branches, an
    /// adapter that is not mergeable).
    public static func mergeAdapters(in module: any Module) throws {
        let modules = module.namedModules()
        for (path, module) in modules {
            let place = path.isEmpty ? "the model" : "'\(path)'"
            if let backbone = module as? any TransformerBackbone {
                if backbone.tokenInserter != nil { throw ModuleError("\(place) has inserted tokens (VPT prompts), which cannot be merged into weights") }
                if backbone.blockHooks.contains(where: { !$0.isEmpty }) {
                    throw ModuleError("\(place) has block branches (bottleneck adapters, channel maps), which cannot be merged into weights")
                }
            }
            if let host = module as? any OutputAdaptable, let adapter = host.outputAdapter, !(adapter is any MergeableOutputAdapter) {
                throw ModuleError("the output adapter on '\(path)' cannot be merged")
            }
        }
        try mergeLinearAdapters(in: module)
        for (_, module) in modules {
            if let host = module as? any OutputAdaptable, let adapter = host.outputAdapter as? any MergeableOutputAdapter {
                adapter.merge(into: host)
                host.outputAdapter = nil
                host.mergedOutputAdapters.append(adapter)
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
    public static func unmerge(_ model: any Classifier) { unmergeAdapters(in: model) }

    /// Restores the base weights of any module and re-attaches the adapters merged by `mergeAdapters`.
    public static func unmergeAdapters(in module: any Module) {
        for (_, module) in module.namedModules().reversed() {
            if let host = module as? any OutputAdaptable, let adapter = host.mergedOutputAdapters.popLast() as? any MergeableOutputAdapter {
                adapter.unmerge(from: host)
                host.outputAdapter = adapter
            }
        }
        unmergeLinearAdapters(in: module)
    }
}
