#!/usr/bin/env python3
"""Peer baseline for `dualign bench --kind generate`: generation with Hugging Face transformers on CPU.

Reads the prompts (token ids) that `dualign bench --kind generate --write-prompts FILE` wrote, and generates
exactly N new tokens per prompt (KV cache, EOS disabled: min_new_tokens = max_new_tokens = N) from the
same weights exported as safetensors. Prompts of different lengths are left-padded with an attention mask, as
transformers requires for batched decoder-only generation. Greedy by default; when the file (or the command
line) asks for K samples per prompt or a temperature, it samples (do_sample, that temperature, no top-k, no
top-p) K sequences per prompt with num_return_sequences = K, as Dualign's `--samples K --temperature T` does.
Prints one JSON line: median seconds per generate call, generated tokens per second, prefill seconds, and
(greedy only) how many sequences match Dualign's tokens.

Setup (once):  python3 -m venv /tmp/peer && /tmp/peer/bin/pip install "torch==2.13.0+cpu" transformers
               dualign export --model smollm2-135m --out /tmp/smollm2-hf --format safetensors
               dualign bench --kind generate --batch 16 --write-prompts /tmp/prompts16.json
Run:           OMP_WAIT_POLICY=PASSIVE /tmp/peer/bin/python launch/bench/peer_generate.py \
                   --model /tmp/smollm2-hf --prompts /tmp/prompts16.json --threads 2
MoCAN-style:   dualign bench --kind generate --batch 2 --samples 8 --temperature 1 --write-prompts /tmp/prompts2x8.json
               then the same command with --prompts /tmp/prompts2x8.json (8 return sequences per prompt)
"""
import argparse, json, statistics, time

import torch
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="Hugging Face directory (dualign export --format safetensors)")
    ap.add_argument("--prompts", required=True, help="JSON written by dualign bench --kind generate --write-prompts")
    ap.add_argument("--new-tokens", type=int, default=None, help="default: the file's new_tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--num-return-sequences", type=int, default=None, help="samples per prompt (default: the file's samples, else 1)")
    ap.add_argument("--temperature", type=float, default=None, help="sample at this temperature (default: the file's, else greedy)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    spec = json.load(open(a.prompts))
    prompts = spec["prompts"]
    N = a.new_tokens or spec["new_tokens"]
    K = a.num_return_sequences or spec.get("samples", 1)
    temperature = a.temperature if a.temperature is not None else spec.get("temperature")
    sample = K > 1 or temperature is not None
    model = LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    gc = model.generation_config
    gc.eos_token_id = None          # no stop token: every sequence generates exactly N tokens
    gc.bos_token_id = None
    pad = 0
    gc.pad_token_id = pad
    gc.max_new_tokens, gc.min_new_tokens, gc.do_sample, gc.num_beams, gc.use_cache = N, N, sample, 1, True
    gc.num_return_sequences = K
    if sample:   # the plain softmax at the temperature: top_k 0 and top_p 1 add no warper
        gc.temperature, gc.top_p, gc.top_k = float(temperature if temperature is not None else 1.0), 1.0, 0
    else:
        gc.temperature, gc.top_p, gc.top_k = None, None, None
    B, L = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((B, L), pad, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for i, p in enumerate(prompts):          # left padding
        ids[i, L - len(p):] = torch.tensor(p)
        mask[i, L - len(p):] = 1
    kwargs = dict(attention_mask=mask, generation_config=gc)
    times, out = [], None
    with torch.inference_mode():
        for r in range(a.warmup + a.repeats):
            t0 = time.perf_counter()
            out = model.generate(ids, **kwargs)
            if r >= a.warmup:
                times.append(time.perf_counter() - t0)
        prefills = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask, use_cache=True)
            prefills.append(time.perf_counter() - t0)
    new = out[:, L:].tolist()
    assert len(new) == B * K and all(len(s) == N for s in new), "a sequence stopped early"
    med, pre = statistics.median(times), statistics.median(prefills)
    result = {"peer": "transformers-generate", "torch": torch.__version__, "threads": a.threads, "batch": B,
              "samples": K, "temperature": temperature if sample else None,
              "new_tokens": N, "prompt_lengths": [len(p) for p in prompts], "median_s": round(med, 4),
              "min_s": round(min(times), 4), "tokens_per_s": round(B * K * N / med, 1), "prefill_s": round(pre, 4),
              "decode_tokens_per_s": round(B * K * (N - 1) / max(med - pre, 1e-9), 1)}
    ref = spec.get("dualign_outputs")
    if ref and not sample:
        def common(x, y):
            k = 0
            while k < min(len(x), len(y)) and x[k] == y[k]:
                k += 1
            return k
        result["identical_sequences"] = sum(1 for x, y in zip(new, ref) if x == y)
        result["mean_common_prefix"] = round(statistics.mean(common(x, y) for x, y in zip(new, ref)), 1)
        if "dualign_tokens_per_s" in spec:
            result["dualign_tokens_per_s"] = round(spec["dualign_tokens_per_s"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
