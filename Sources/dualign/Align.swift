// `dualign align mocan|pecan|sacpo|primal-dual|ppo-lag|sail|dp-rlhf --config run.yaml [--set key=value …]`.

import ArgumentParser
import Foundation
import Distributed
import Training
import Models
import Pipelines

struct Align: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Align a policy for helpfulness under a safety constraint (MoCAN, PeCAN, SACPO, primal–dual, PPO-Lagrangian), online with SAIL, or privately (dp-rlhf: DP-SFT → DP reward → DP-PPO); rerun the same command to resume.",
        discussion: """
        Every stage (sampling, scoring, the dual, pseudo-labels, each DPO) writes its output under \
        OUTPUTDIR/stages/ and is skipped on rerun when complete; a DPO stage resumes from its checkpoints. \
        OUTPUTDIR/align.json lists the models produced, λ, the margin, the predicted improvement and the \
        budget (wall time and forward/backward tokens per stage); `dualign eval --run OUTPUTDIR` evaluates them.
        """)

    @Argument(help: "The method: \(AlignMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: AlignMethod
    @OptionGroup var options: RunOptions

    func run() throws {
        let comm = try MPICommunicator.world()
        var config = try options.resolve(task: method == .ppoLagrangian ? .ppo : .dpo, communicator: comm)
        config.align.method = method
        try config.align.validate()
        if config.dp.isEnabled && method != .dpRLHF {
            // Their duals, λ updates and relabelling read every prompt's samples without noise, and their DPO stages
            // would reuse the same rows (sequential composition): no privacy accounting covers them.
            throw RunConfigError(key: "dp", message: "\(method.rawValue) has no private variant (its dual or λ reads every prompt without noise, and its stages reuse the same rows); use `dualign align dp-rlhf`, or `dualign train` with dp, or remove the dp section")
        }
        comm.collectiveTimeout = config.distributed.collectiveTimeout
        let matmul = try configureThreads(config.distributed.threads, ranks: comm.size, matmul: config.distributed.matmulBackend)
        if comm.rank == 0 {
            Output.line("resolved config:\n" + RunConfigLoader.json(config))
            Output.line("matmul: \(matmul.backend) (\(matmul.backend.kernels); \(matmul.reason))")
        }
        let tokenizerSource = try ModelSource.load(config.model, loadWeights: false)
        let template = try chatTemplate(config, tokenizerSource)
        let run = try PipelineRun(directory: URL(fileURLWithPath: config.outputDir), communicator: comm)
        let context = AlignmentContext(config: config, communicator: comm, template: template, run: run)
        switch method {
        case .mocan: try MoCANPipeline(context: context).run()
        case .pecan: try PeCANPipeline(context: context).run()
        case .sacpo: try SACPOPipeline(context: context).run()
        case .primalDual: try PrimalDualPipeline(context: context).run()
        case .ppoLagrangian: try PPOLagrangianPipeline(context: context).run()
        case .sail: try SAILPipeline(context: context).run()
        case .dpRLHF: try PrivateRLHFPipeline(context: context).run()
        }
        if comm.rank == 0 {
            let b = run.totalBudget
            Output.line(String(format: "aligned (%@): %.0f s, %.0f generated, %.0f forward, %.0f trained tokens; see %@/align.json",
                               method.rawValue, b.seconds, b.generatedTokens, b.forwardTokens, b.trainTokens, config.outputDir))
        }
    }
}

extension AlignMethod: ExpressibleByArgument {}
