#!/usr/bin/env python3
"""Peer baseline for `dualign bench --kind generate`: greedy generation with Hugging Face transformers on CPU.

Reads the prompts (token ids) that `dualign bench --kind generate --write-prompts FILE` wrote, and generates
exactly N new tokens per prompt (greedy, KV cache, EOS disabled: min_new_tokens = max_new_tokens = N) from the
same weights exported as safetensors. Prompts of different lengths are left-padded with an attention mask, as
transformers requires for batched decoder-only generation. Prints one JSON line: median seconds per generate
call, generated tokens per second, prefill seconds, and how many sequences match Dualign's greedy tokens.

Setup (once):  python3 -m venv /tmp/peer && /tmp/peer/bin/pip install "torch==2.13.0+cpu" transformers
               dualign export --model smollm2-135m --out /tmp/smollm2-hf --format safetensors
               dualign bench --kind generate --batch 16 --write-prompts /tmp/prompts16.json
Run:           OMP_WAIT_POLICY=PASSIVE /tmp/peer/bin/python launch/bench/peer_generate.py \
                   --model /tmp/smollm2-hf --prompts /tmp/prompts16.json --threads 2
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
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    spec = json.load(open(a.prompts))
    prompts = spec["prompts"]
    N = a.new_tokens or spec["new_tokens"]
    model = LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    gc = model.generation_config
    gc.eos_token_id = None          # no stop token: every sequence generates exactly N tokens
    gc.bos_token_id = None
    pad = 0
    gc.pad_token_id = pad
    gc.max_new_tokens, gc.min_new_tokens, gc.do_sample, gc.num_beams, gc.use_cache = N, N, False, 1, True
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
    assert all(len(s) == N for s in new), "a sequence stopped early"
    med, pre = statistics.median(times), statistics.median(prefills)
    result = {"peer": "transformers-generate", "torch": torch.__version__, "threads": a.threads, "batch": B,
              "new_tokens": N, "prompt_lengths": [len(p) for p in prompts], "median_s": round(med, 4),
              "min_s": round(min(times), 4), "tokens_per_s": round(B * N / med, 1), "prefill_s": round(pre, 4),
              "decode_tokens_per_s": round(B * (N - 1) / max(med - pre, 1e-9), 1)}
    ref = spec.get("dualign_outputs")
    if ref:
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
