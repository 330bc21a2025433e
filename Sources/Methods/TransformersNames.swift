import Layers

/// Which transformers release's module names adapters are written under. peft names an adapter's tensors and
/// `target_modules` by the modules of the model as transformers builds it in memory, and transformers 5 renamed
/// the vision models' modules: DINOv2's `attention.attention.query` ... `attention.output.dense` are
/// `attention.q_proj` ... `attention.o_proj`, and ViT's blocks `vit.encoder.layer.N` are `vit.layers.N` with the
/// same projections. ViT's other modules are named differently from ours in both (`layernorm_before`,
/// `layernorm_after`; `intermediate.dense` and `output.dense` in transformers 4, `mlp.fc1`, `mlp.fc2` in 5). BERT's
/// names are the same in both and ours.
public enum TransformersNaming: String, Sendable, CaseIterable, Codable {
    case transformers5 = "5"
    case transformers4 = "4"

    /// What current transformers uses (5.x).
    public static let current = TransformersNaming.transformers5
}

enum TransformersNames {
    /// Pairs (ours, theirs) of dotted name pieces for a path of `backbone` under `naming`.
    static func renames(backbone: String, naming: TransformersNaming) -> [(String, String)] {
        let attention5 = [(".attention.attention.query.", ".attention.q_proj."), (".attention.attention.key.", ".attention.k_proj."),
                          (".attention.attention.value.", ".attention.v_proj."), (".attention.output.dense.", ".attention.o_proj.")]
        let norms = [(".norm1.", ".layernorm_before."), (".norm2.", ".layernorm_after.")]
        switch (backbone, naming) {
        case ("dinov2", .transformers5): return attention5
        case ("vit", .transformers5): return [(".vit.encoder.layer.", ".vit.layers.")] + attention5 + norms
        case ("vit", .transformers4): return norms + [(".mlp.fc1.", ".intermediate.dense."), (".mlp.fc2.", ".output.dense.")]
        default: return []
        }
    }

    /// The backbone a path (without the adapter file's `base_model.model.` prefix) lies in.
    static func backbone(of path: String) -> String { String(path.prefix { $0 != "." }) }

    /// `path` (a module or tensor path of ours, beginning with the backbone's name) as transformers `naming` names it.
    static func theirs(_ path: String, naming: TransformersNaming) -> String {
        var name = "." + path + "."
        for (ours, theirs) in renames(backbone: backbone(of: path), naming: naming) where name.contains(ours) {
            name = name.replacingOccurrences(of: ours, with: theirs)
        }
        return String(name.dropFirst().dropLast())
    }

    /// `path` under either release's names (or ours) as this library names it.
    static func ours(_ path: String) -> String {
        let backbone = backbone(of: path)
        var name = "." + path + "."
        for naming in TransformersNaming.allCases {
            // transformers 4 ViT's `output.dense` is also the tail of the attention's `attention.output.dense`.
            let pairs = renames(backbone: backbone, naming: naming)
            for (ours, theirs) in pairs.reversed() where name.contains(theirs) {
                if theirs == ".output.dense.", name.contains(".attention.output.dense.") { continue }
                name = name.replacingOccurrences(of: theirs, with: ours)
            }
        }
        return String(name.dropFirst().dropLast())
    }

    /// `targets` as transformers `naming` would match the same Linear layers of `model`: each name becomes the
    /// corresponding tail of its layers' names when that tail selects exactly those layers there; otherwise (and
    /// for a regex) the targets become the full names of the layers they select. `all-linear` stays.
    static func theirs(_ targets: TargetModules, in model: any Module, naming: TransformersNaming) -> TargetModules {
        let paths = model.namedModules().compactMap { $0.1 is Linear ? $0.0 : nil }
        let mapped = Dictionary(uniqueKeysWithValues: paths.map { ($0, theirs($0, naming: naming)) })
        let all = Set(mapped.values)
        func selected(_ names: [String]) -> Set<String> {
            Set(all.filter { TargetModules.names(names).matches($0) })
        }
        func full(_ chosen: [String]) -> TargetModules { .names(chosen.compactMap { mapped[$0] }.sorted()) }
        switch targets {
        case .names(let names):
            var translated: [String] = []
            for name in names {
                let layers = paths.filter { TargetModules.names([name]).matches($0) }
                let wanted = Set(layers.compactMap { mapped[$0] })
                let depth = name.split(separator: ".").count
                let tails = Set(wanted.map { $0.split(separator: ".").suffix(depth).joined(separator: ".") })
                if tails.count == 1, let tail = tails.first, selected([tail]) == wanted {
                    translated.append(tail)
                } else if wanted.isEmpty {
                    translated.append(name)
                } else {
                    return full(paths.filter { targets.matches($0) })
                }
            }
            return .names(translated)
        default:
            return targets == .allLinear ? targets : full(paths.filter { targets.matches($0) })
        }
    }

    /// `targets` read from a config with each name that selects no Linear layer of `model` but is a layer's name
    /// (or tail) under either transformers release replaced by ours: the tail of the same depth when it selects
    /// the same layers, else the full paths of the layers it selects there.
    static func ours(_ targets: TargetModules, in model: any Module) -> TargetModules {
        let paths = model.namedModules().compactMap { $0.1 is Linear ? $0.0 : nil }
        var result: [String] = []
        switch targets {
        case .allLinear: return targets
        case .pattern:
            // A pattern written against transformers' names (peft matches it to their full paths): the full paths
            // of ours it selects there.
            guard !paths.contains(where: { targets.matches($0) }) else { return targets }
            result = paths.filter { path in TransformersNaming.allCases.contains { targets.matches(theirs(path, naming: $0)) } }
            if result.isEmpty { return targets }
            return withoutBackbone(result, in: model)
        case .names(let names):
            for name in names {
                if paths.contains(where: { TargetModules.names([name]).matches($0) }) { result.append(name); continue }
                let matched = paths.filter { path in
                    TransformersNaming.allCases.contains { TargetModules.names([name]).matches(theirs(path, naming: $0)) }
                }
                // The same depth of our names when it selects exactly those layers (so the targets stay short and
                // fit the backbone alone too), else their full paths.
                let depth = name.split(separator: ".").count
                let tails = Set(matched.map { $0.split(separator: ".").suffix(depth).joined(separator: ".") })
                if tails.count == 1, let tail = tails.first, Set(paths.filter { TargetModules.names([tail]).matches($0) }) == Set(matched) {
                    result.append(tail)
                } else {
                    result += matched.isEmpty ? [name] : matched
                }
            }
            return withoutBackbone(result, in: model)
        }
    }

    /// `names` with the classifier's backbone name taken off the front: methods attach to a classifier's
    /// backbone, where paths do not begin with it.
    static func withoutBackbone(_ names: [String], in model: any Module) -> TargetModules {
        guard let backbone = (model as? any Classifier)?.backboneName else { return .names(names) }
        return .names(names.map { $0.hasPrefix(backbone + ".") ? String($0.dropFirst(backbone.count + 1)) : $0 })
    }
}
