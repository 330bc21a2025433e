import ArgumentParser
import Collectives
import BLASBinding
import Engine
import Foundation

@main
struct PeftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peft",
        abstract: "Parameter-efficient fine-tuning of pretrained transformers on the CPU.",
        subcommands: [TrainCommand.self, EvalCommand.self, MergeCommand.self, FuseCommand.self, EvalAdapterCommand.self, PredictCommand.self, TasksCommand.self, MethodsCommand.self, ReportCommand.self, DemoCommand.self,
                      ImportCommand.self, TrainLanguageModelCommand.self, EvaluateLanguageModelCommand.self, GenerateCommand.self, ChatCommand.self, ModelsCommand.self, ServeCommand.self,
                      BenchCommand.self],
        defaultSubcommand: TrainCommand.self)
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print what the library is doing, including the OpenBLAS core and the kernel set in use.")
    var verbose = false

    /// Loads OpenBLAS (a clear error if it cannot be) and prints what is in use with `--verbose`: the library and
    /// its core, and the kernel set chosen for this CPU (avx512-bf16, avx512, avx2-fma or portable).
    func announce(quiet: Bool = false) throws {
        let blas: OpenBLAS
        do { blas = try OpenBLAS.load() } catch { throw ValidationError("\(error)") }
        if verbose && !quiet {
            printError(blas.summary)
            printError("kernels: \(ElementwiseKernels.summary) (best this CPU runs: \(KernelSet.best); PEFT_SIMD chooses a lower one)")
        }
    }
}

/// Writes a line to standard error (progress and diagnostics; results go to standard output).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs async work from a synchronous command and waits for it. The root command stays synchronous so the commands
/// that need no concurrency never start Swift's thread pool (each of its threads reserves a malloc arena of address
/// space, which the `ulimit -v` limits of RELIABILITY.md count).
func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
    final class Outcome: @unchecked Sendable { var error: (any Error)? }  // written before the signal, read after
    let outcome = Outcome(), done = DispatchSemaphore(value: 0)
    Task {
        do { try await body() } catch { outcome.error = error }
        done.signal()
    }
    done.wait()
    if let error = outcome.error { throw error }
}

/// A command value handed to the async work of `runBlocking` (only that work uses it).
struct CommandBox<Command>: @unchecked Sendable { let command: Command }

/// This process's ranks when `mpirun` started it (MPI initialised here), else a group of one; with `--verbose`
/// each rank says who it is.
func joinProcessGroup(verbose: Bool = false) throws -> ProcessGroup {
    let group: ProcessGroup
    do { group = try ProcessGroup.world() } catch { throw ValidationError("\(error)") }
    if group.isDistributed && (verbose || group.isLeader) {
        let host = ProcessInfo.processInfo.hostName
        printError("rank \(group.rank) of \(group.size) on \(host), pid \(getpid())"
                   + (group.isLeader ? "; " + (group.libraryVersion?.split(separator: ",").first.map(String.init) ?? "MPI") : ""))
    }
    return group
}
