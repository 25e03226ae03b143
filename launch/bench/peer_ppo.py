#!/usr/bin/env python3
"""Peer baseline for PPO throughput: TRL's PPOTrainer (trl==0.29.1, `trl.experimental.ppo`) on CPU, beside
`dualign train ppo` on the same tiny models, prompts and batch shape (launch/bench/ppo.sh runs both).

Three modes:
  --make DIR        writes the shared inputs: policy/ (LlamaForCausalLM, Dualign's `tiny` shape: vocab 8192,
                    width 256, 4 blocks, 4/2 heads, tied embeddings), reward/ and value/ (LlamaForSequenceClassification,
                    one label, `score.weight`; the value model starts as a copy of the reward model, as TRL's
                    examples do), and prompts.jsonl (pre-tokenized prompts, Dualign's `tokens` schema), all random
                    with fixed seeds.
  --run DIR         trains TRL's PPO on them and prints one JSON line with the median seconds and tokens/s of the
                    rollout (sampling, then the policy, reference, value and reward forward passes, GAE) and of the
                    update (the PPO epochs), per rollout batch after --warmup batches.
  --dualign FILE    reads a Dualign run's metrics.jsonl and prints the same numbers.

Shape (both sides): a rollout batch of --batch prompts of --prompt-length tokens, --response-length sampled
tokens each (no stop token, temperature 1, no top-k/top-p), --epochs PPO epochs over mini-batches of
--mini-batch episodes, micro-batches of --micro, a separate value model, a frozen reference model.

Timing of TRL: the rollout runs from the call of `batch_generation` to the return of `masked_whiten` (the
advantages, its last step); the update from there to the trainer's `on_step_end` callback. Both functions are
wrapped in the imported module, nothing else is changed.

Setup: /tmp/peer/bin/pip install "trl==0.29.1"   (with torch 2.13.0+cpu, transformers 5.x)
"""
import argparse
import json
import os
import statistics
import sys
import time

TINY = dict(vocab_size=8192, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-5, max_position_embeddings=2048,
            tie_word_embeddings=True, attention_bias=False, mlp_bias=False, hidden_act="silu")
PAD, EOS, UNK = 0, 1, 2


def tokenizer():
    """A word-level tokenizer over ids 0…V−1 (TRL needs pad and eos ids and a collator; prompts are ids already)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    vocab = {f"t{i}": i for i in range(TINY["vocab_size"])}
    vocab["<pad>"], vocab["<eos>"], vocab["<unk>"] = PAD, EOS, UNK
    del vocab["t0"], vocab["t1"], vocab["t2"]
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
                                  pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tok.padding_side = "left"
    return tok


def make(d, prompts, prompt_length):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification
    torch.manual_seed(0)
    cfg = LlamaConfig(**TINY)
    policy = LlamaForCausalLM(cfg).float()
    policy.save_pretrained(os.path.join(d, "policy"), safe_serialization=True)
    torch.manual_seed(1)
    rcfg = LlamaConfig(**TINY, num_labels=1, pad_token_id=PAD)
    reward = LlamaForSequenceClassification(rcfg).float()
    with torch.no_grad():
        reward.score.weight.normal_(0, 0.5)
    reward.save_pretrained(os.path.join(d, "reward"), safe_serialization=True)
    reward.save_pretrained(os.path.join(d, "value"), safe_serialization=True)
    g = torch.Generator().manual_seed(2)
    with open(os.path.join(d, "prompts.jsonl"), "w") as f:
        for i in range(prompts):
            ids = torch.randint(3, TINY["vocab_size"], (prompt_length,), generator=g).tolist()
            f.write(json.dumps(dict(id=f"p{i}", prompt_ids=ids, chosen_ids=[3], rejected_ids=[4])) + "\n")


def run(a):
    import torch
    from datasets import Dataset
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification, TrainerCallback
    import trl
    import trl.experimental.ppo.ppo_trainer as module
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    torch.set_num_threads(a.threads)
    marks = {"rollout_start": [], "rollout_end": [], "update_end": []}
    generate, whiten = module.batch_generation, module.masked_whiten

    def timed_generation(*args, **kwargs):
        marks["rollout_start"].append(time.perf_counter())
        return generate(*args, **kwargs)

    def timed_whiten(*args, **kwargs):
        out = whiten(*args, **kwargs)
        marks["rollout_end"].append(time.perf_counter())
        return out

    module.batch_generation, module.masked_whiten = timed_generation, timed_whiten

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks["update_end"].append(time.perf_counter())

    d = a.run
    prompts = [json.loads(line)["prompt_ids"] for line in open(os.path.join(d, "prompts.jsonl"))]
    updates = a.warmup + a.repeats
    dataset = Dataset.from_dict({"input_ids": prompts[:a.batch * max(1, len(prompts) // a.batch)]})
    policy = LlamaForCausalLM.from_pretrained(os.path.join(d, "policy"), torch_dtype=torch.float32)
    ref = LlamaForCausalLM.from_pretrained(os.path.join(d, "policy"), torch_dtype=torch.float32)
    reward = LlamaForSequenceClassification.from_pretrained(os.path.join(d, "reward"), torch_dtype=torch.float32, num_labels=1)
    value = LlamaForSequenceClassification.from_pretrained(os.path.join(d, "value"), torch_dtype=torch.float32, num_labels=1)
    # TRL's rollout batch is per_device_train_batch_size × gradient_accumulation_steps, cut into num_mini_batches
    # mini-batches walked in micro-batches of per_device_train_batch_size.
    grad_accum = a.batch // a.micro
    config = PPOConfig(output_dir=os.path.join(d, "trl-out"), per_device_train_batch_size=a.micro, gradient_accumulation_steps=grad_accum,
                       num_mini_batches=a.batch // a.mini_batch, local_rollout_forward_batch_size=a.batch, num_ppo_epochs=a.epochs,
                       response_length=a.response_length, total_episodes=a.batch * updates, learning_rate=3e-6, kl_coef=0.05,
                       temperature=1.0, stop_token=None, missing_eos_penalty=None, report_to=[], logging_steps=1, save_strategy="no",
                       num_sample_generations=0, use_cpu=True, seed=0, bf16=False, fp16=False)
    trainer = PPOTrainer(args=config, processing_class=tokenizer(), model=policy, ref_model=ref, reward_model=reward,
                         train_dataset=dataset, value_model=value, callbacks=[StepEnd()])
    trainer.train()
    rollouts = [e - s for s, e in zip(marks["rollout_start"], marks["rollout_end"])][a.warmup:]
    update = [u - e for e, u in zip(marks["rollout_end"], marks["update_end"])][a.warmup:]
    generated = a.batch * a.response_length
    trained = a.epochs * a.batch * (len(prompts[0]) + a.response_length)
    report("trl-ppo", rollouts, update, generated, trained, extra={"trl": trl.__version__, "torch": torch.__version__, "threads": a.threads})


def dualign(a):
    """Per rollout batch from a Dualign metrics.jsonl: rollout seconds (time/rollout_s) and update seconds (the
    rollout's steps, each Δtokens/trained ÷ tokens_per_s, less its rollout)."""
    lines = [json.loads(l) for l in open(a.dualign)]
    steps = [m for m in lines if "loss" in m]
    rollouts, update, gen, trn = [], [], [], []
    prev_trained, prev_generated = 0.0, 0.0
    current = None
    for m in steps:
        if "time/rollout_s" in m:
            if current:
                rollouts.append(current[0]); update.append(current[1] - current[0]); gen.append(current[2]); trn.append(current[3])
            current = [m["time/rollout_s"], 0.0, m["tokens/generated"] - prev_generated, 0.0]
            prev_generated = m["tokens/generated"]
        tokens = m["tokens/trained"] - prev_trained
        prev_trained = m["tokens/trained"]
        current[1] += tokens / m["tokens_per_s"]
        current[3] += tokens
    if current:
        rollouts.append(current[0]); update.append(current[1] - current[0]); gen.append(current[2]); trn.append(current[3])
    w = a.warmup
    report("dualign", rollouts[w:], update[w:], statistics.median(gen[w:]), statistics.median(trn[w:]))


def report(peer, rollouts, update, generated, trained, extra=None):
    r, u = statistics.median(rollouts), statistics.median(update)
    out = {"peer": peer, "rollouts_timed": len(rollouts), "rollout_s": round(r, 4), "update_s": round(u, 4),
           "generated_tokens": generated, "trained_tokens": trained,
           "rollout_generated_tokens_per_s": round(generated / r, 1), "update_tokens_per_s": round(trained / u, 1),
           "iteration_s": round(r + u, 4)}
    out.update(extra or {})
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make"); ap.add_argument("--run"); ap.add_argument("--dualign")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--prompt-length", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mini-batch", type=int, default=8)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--response-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.make:
        make(a.make, a.prompts, a.prompt_length)
    elif a.run:
        run(a)
    elif a.dualign:
        dualign(a)
    else:
        ap.error("give --make DIR, --run DIR or --dualign METRICS")


if __name__ == "__main__":
    sys.exit(main())
