// The `dualign` command: subcommands for benchmarking, training and alignment.

import ArgumentParser
import Distributed
import CShims
import Tensors
import Foundation

@main
struct Dualign: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dualign",
        abstract: "Align language models with human preferences under safety constraints, on CPU clusters.",
        subcommands: [Train.self, Generate.self, Export.self, Tokenize.self, DualCommand.self, InitModel.self, LaunchFlags.self, Bench.self, CommCheck.self, Score.self, Merge.self, Align.self, Eval.self, PrivacyCommand.self, PrivateSplit.self, RejectedSamples.self]
    )

    /// Runs the command, then finalizes MPI on every rank; after an error under mpirun, aborts the job.
    static func main() {
        // Denormals slow float code badly as losses shrink: the command's main thread flushes them to zero.
        // (Set here, not in the model, so a library caller's floating-point environment is left alone.)
        dualign_flush_denormals()
        do {
            var command = try parseAsRoot()
            try command.run()
            try MPICommunicator.finalize()
        } catch {
            if error is CleanExit || (error as? ExitCode) == .success { try? MPICommunicator.finalize(); exit(withError: error) }
            _ = MPICommunicator.abortIfParallel("dualign: error: \(error)")
            exit(withError: error)
        }
    }
}

/// Options every compute-heavy subcommand shares.
struct ComputeOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for BLAS and Dualign's kernels (default: all cores; use 1 per rank under mpirun).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    /// Sets threads and the matrix backend (see `configureThreads`).
    @discardableResult
    func apply(ranks: Int) throws -> MatmulSelection { try configureThreads(threads, ranks: ranks) }
}

/// Sets BLAS and kernel threads — the cores divided among the ranks on this machine (Open MPI's local
/// size, else `ranks`), unless `threads` is given — and the matrix backend: DUALIGN_MATMUL, else
/// `matmul` (the config's `distributed.matmulBackend`), else the processor's choice.
@discardableResult
func configureThreads(_ threads: Int?, ranks: Int, matmul: String? = nil) throws -> MatmulSelection {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? ranks
    let n = threads ?? max(1, cores / max(1, local))
    BLAS.setThreads(n)
    ThreadPool.threads = n
    let selection = try MatmulBackend.resolve(configured: matmul)
    Matmul.backend = selection.backend
    return selection
}
