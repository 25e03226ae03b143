// `dualign launch-flags`: the mpirun options a run config implies (failure detection), for launch scripts.

import ArgumentParser
import Foundation
import Distributed
import Training

struct LaunchFlags: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch-flags",
        abstract: "Print the mpirun options a run config sets (Open MPI's OOB keepalive), one per line pair.")

    @OptionGroup var options: RunOptions

    func run() throws {
        let config = try options.resolve(task: .dpo, communicator: try MPICommunicator.world())
        let d = config.distributed
        for (key, value) in [("oob_tcp_keepalive_time", d.oobKeepaliveTime), ("oob_tcp_keepalive_intvl", d.oobKeepaliveInterval),
                             ("oob_tcp_keepalive_probes", d.oobKeepaliveProbes)] {
            Output.line("--mca \(key) \(value)")
        }
    }
}
