import Engine
import Foundation
import Layers
import Methods
import Models
import Training

/// One adapter in memory, detached from the shared base: what it attaches to the backbone (adapters of linear
/// layers, output adapters, inserted tokens, block branches), the base parameters it trained itself (BitFit's biases,
/// LayerNorm tuning's scales, full fine-tuning's everything) and its own head.
final class ResidentAdapter {
    let entry: AdapterEntry
    let method: String
    /// A classifier on the shared backbone with this adapter's head (only the head is its own).
    let classifier: any Classifier
    let classNames: [String]
    /// Image side for a vision base (the adapter's, else its run's, else the backbone's own).
    let resolution: Int?
    var linear: [(layer: Linear, adapter: any LinearAdapter)] = []
    var output: [(host: any OutputAdaptable, adapter: any OutputAdapter)] = []
    var tokenInserter: (any TokenInserter)?
    var branches: [(block: Int, point: BlockHooks.Point, name: String, module: any StreamModule)] = []
    /// Base parameters this adapter trained, with its values for them.
    var overrides: [(tensor: Tensor, values: [Float])] = []
    /// Bytes of everything above (adapter tensors, head, overridden values).
    var bytes = 0
    /// Measured when loaded: fused switch cost and unfused extra cost per example, in seconds (dense mergeable only).
    var fusedSwitchSeconds: Double?
    var unfusedOverheadSeconds: Double?
    var examples = 0
    var lastMode: SwitchMode?
    var lastUse: UInt64 = 0

    init(entry: AdapterEntry, method: String, classifier: any Classifier, classNames: [String], resolution: Int?) {
        self.entry = entry
        self.method = method
        self.classifier = classifier
        self.classNames = classNames
        self.resolution = resolution
    }

    /// Every linear-layer adapter can be folded into its layer's weights.
    var isMergeable: Bool { !linear.isEmpty && linear.allSatisfy { $0.adapter is any MergeableAdapter } }

    /// Folding it in and out is a sparse write that restores the exact saved values (SHiRA).
    var isSparseExact: Bool {
        isMergeable && linear.allSatisfy { ($0.adapter as? any MergeableAdapter)?.unmergeRestoresExactly == true && $0.adapter is ShiraAdapter }
    }

    var status: AdapterStatus {
        AdapterStatus(name: entry.name, path: entry.directory.path, method: method, classes: classifier.classCount,
                      resident: true, active: false, bytes: bytes, examples: examples,
                      fusedSwitchMilliseconds: fusedSwitchSeconds.map { $0 * 1000 },
                      unfusedOverheadMilliseconds: unfusedOverheadSeconds.map { $0 * 1000 }, lastMode: lastMode)
    }
}
