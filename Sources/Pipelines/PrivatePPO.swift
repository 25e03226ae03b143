// DP-PPO's side of the objective (docs/privacy.md, "DP-PPO"): which PPO settings DP-SGD's accounting allows.
// The private step itself is the trainer's (PrivateStep.swift); PPOObjective's `isPrivate` branches make each
// step's Poisson sample its rollout batch and each episode's loss its own token mean.

import Foundation
import Training

extension PPOObjective {
    /// DP-PPO's accounting holds with one PPO epoch per rollout batch, a fixed KL coefficient, advantages
    /// whitened per episode or not at all, and value heads on the trunk (trained by the same clipped step).
    public func privacyRefusal(config: RunConfig) -> RunConfigError? {
        let p = config.ppo
        if lagrangian {
            return RunConfigError(key: "dp", message: "PPO-Lagrangian steps λ on the rollout batch's episode costs without noise, and λ weighs every later episode's advantage; private PPO-Lagrangian is not supported — train PPO (`dualign train ppo`) with dp, or remove the dp section")
        }
        if p.ppoEpochs != 1 {
            return RunConfigError(key: "ppo.ppoEpochs", message: "DP-PPO trains on each private rollout batch once; \(p.ppoEpochs) epochs reuse the sampled prompts in several steps and break the accounting — set ppoEpochs: 1 (the paper's T_PPO = 1)")
        }
        if p.klController == .adaptive {
            return RunConfigError(key: "ppo.klController", message: "the adaptive KL controller steps on the batch's mean KL, so every later episode's reward depends on other users' episodes — use klController: fixed under dp")
        }
        if p.whitening == .batch {
            return RunConfigError(key: "ppo.whitening", message: "batch whitening normalises each advantage by the whole rollout batch's moments (every example's loss reads the others') — use whitening: sequence or none under dp")
        }
        if p.critic == .model {
            return RunConfigError(key: "ppo.critic", message: "separate critics train on the private rollouts with their own optimizer, outside DP-SGD — use critic: head (value heads clipped jointly with the policy)")
        }
        return nil
    }
}
