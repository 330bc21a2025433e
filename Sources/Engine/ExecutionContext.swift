import Foundation

/// The settings that decide how the engine computes: GEMM precision, attention recompute, the kernel set, training
/// mode and its step seed, whether the autograd graph is recorded, and the profile ops report to. They are values bound to the running code
/// (a task-local, carried to the engine's worker threads by `Parallel` and the GEMM), not process-wide switches, so
/// two models can train at once in one process with different settings:
///
/// ```swift
/// var context = ExecutionContext.current
/// context.precision = .bfloat16
/// try context.run { try trainer.run() }          // this trainer in bf16, others unaffected
/// ExecutionContext.with({ $0.isTraining = true }) { model.logits(batch) }
/// ```
/// Outside any binding, `processDefault` applies: it starts from the environment (`PEFT_GEMM`,
/// `PEFT_ATTENTION_RECOMPUTE_ABOVE`, `PEFT_SIMD`).
public struct ExecutionContext: Sendable, Equatable {
    /// Precision of the products that may run in reduced precision (see `GEMMPrecision`).
    public var precision: GEMMPrecision
    /// Attention recomputes its probabilities in the backward for sequences longer than this (see
    /// `AttentionSettings`).
    public var attentionRecomputeAboveTokens: Int
    /// The most capable kernel family the engine may use (`KernelSet`); the CPU may support less, and then its
    /// best family runs. `.portable` runs the Swift SIMD code everywhere.
    public var kernels: KernelSet
    /// Modules run in training mode (dropout active).
    public var isTraining: Bool
    /// Seed of the current training step; stochastic layers derive their randomness from it.
    public var stepSeed: UInt64
    /// Operations record the autograd graph.
    public var recordsGraph: Bool
    /// Where op times and operation counts go (nil: not profiled). Contexts are equal when they share the profile.
    public var profile: Profile?

    /// The settings given by an environment (`PEFT_GEMM=bf16|fp32`, `PEFT_ATTENTION_RECOMPUTE_ABOVE=N`,
    /// `PEFT_SIMD=portable|avx2|avx512`, `generic` meaning `portable`); training mode off, graph recording on.
    public init(environment: [String: String]) {
        precision = environment["PEFT_GEMM"].flatMap(GEMMPrecision.init(rawValue:)) ?? .float32
        attentionRecomputeAboveTokens = environment["PEFT_ATTENTION_RECOMPUTE_ABOVE"].flatMap { Int($0) } ?? 128
        kernels = environment["PEFT_SIMD"].flatMap(KernelSet.init(name:)) ?? .avx512
        isTraining = false
        stepSeed = 0
        recordsGraph = true
        profile = nil
    }

    public static func == (a: ExecutionContext, b: ExecutionContext) -> Bool {
        a.precision == b.precision && a.attentionRecomputeAboveTokens == b.attentionRecomputeAboveTokens
            && a.kernels == b.kernels && a.isTraining == b.isTraining
            && a.stepSeed == b.stepSeed && a.recordsGraph == b.recordsGraph && a.profile === b.profile
    }

    /// What applies where nothing is bound: the process's environment.
    public static let processDefault = ExecutionContext(environment: ProcessInfo.processInfo.environment)

    /// The settings in force for the running code.
    @TaskLocal public static var current: ExecutionContext = .processDefault

    /// Runs `body` with these settings.
    public func run<R>(_ body: () throws -> R) rethrows -> R {
        try Self.$current.withValue(self, operation: body)
    }

    /// Runs `body` with the current settings changed by `change`.
    public static func with<R>(_ change: (inout ExecutionContext) -> Void, _ body: () throws -> R) rethrows -> R {
        var context = current
        change(&context)
        return try context.run(body)
    }
}
