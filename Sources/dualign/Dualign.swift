// The `dualign` command: subcommands for benchmarking, training and alignment.

import ArgumentParser

@main
struct Dualign: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dualign",
        abstract: "Align language models with human preferences under safety constraints, on CPU clusters.",
        subcommands: [Bench.self]
    )
}

/// Options every compute-heavy subcommand shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and Dualign's kernels (default: all cores; use 1 per rank under mpirun).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }
}
