# Issue 20 experiment (not a benchmark of the release): run from /tmp/i20d with PYTHONPATH=<repo>; the features
# cache and the multi-device base lived in /tmp (arm_features_snap.pt, multi_nojetson_nb_m3_2500.pt) and are not shipped.
import sys, time, os, json, warnings, pickle
sys.path.insert(0, "/work/wt/i20d/benchmarks"); sys.path.insert(0, "/work/wt/i20d")
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(1)
import predict_arm as PA
from gapp_tui.predict.predictor import Predictor, default_predictor_path
from gapp_tui.predict.samples import totals_dataset, totals_features_cache
from gapp_tui.predict.tables import device_tables
from gapp_tui.predict.adapt import adapt, head_data, _items_times, _folds
from gapp_tui.predict.interval import spread
from gapp_tui.features import NODE_COLUMNS, OP_KINDS

t0 = time.time()
pred = Predictor.load(default_predictor_path())
rows = device_tables()[PA.JETSON]
known = PA._known_left_out("/work/wt/i20d/benchmarks/results/predict_arm.json")
keep = [r for r in rows if (r["model"], "x".join(map(str, r["input_shape"]))) not in known]
ds = totals_dataset(keep, cache="/tmp/i20d/arm_features.pt", item_timeout_s=300)
print("dataset", len(ds.y), round(time.time() - t0), "s", flush=True)
C = {c: i for i, c in enumerate(NODE_COLUMNS)}
groups = {"norm": ["batchnorm", "layernorm", "groupnorm", "instancenorm", "localresponsenorm"],
          "act": ["relu", "relu6", "gelu", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh", "leaky_relu", "elu", "softmax"],
          "pool": ["maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "mean", "sum", "max"],
          "elem": ["add", "sub", "mul", "div", "neg", "clamp", "pow"],
          "move": ["cat", "stack", "chunk", "split", "getitem", "pad", "roll", "interpolate", "flatten", "reshape", "permute", "transpose", "contiguous", "expand"],
          "mm": ["linear", "matmul", "attention"]}
G = []
for g in ds.graphs:
    x = g.data.x.double().numpy()
    fl, by = x[:, C["flops"]], x[:, C["bytes_read"]] + x[:, C["bytes_written"]]
    conv = sum(x[:, C[f"op_{k}"]] for k in ("conv1d", "conv2d", "conv3d", "conv_transpose")) > 0.5
    dw = conv & (x[:, C["groups"]] > 1) & (np.abs(x[:, C["groups"]] - x[:, C["in_channels"]]) < 0.5)
    gc = conv & (x[:, C["groups"]] > 1) & ~dw
    dense = conv & ~dw & ~gc
    v = [fl[dense].sum(), fl[dw].sum(), fl[gc].sum()]
    v += [fl[sum(x[:, C[f"op_{k}"]] for k in groups["mm"]) > 0.5].sum()]
    v += [by[sum(x[:, C[f"op_{k}"]] for k in groups[n]) > 0.5].sum() for n in ("norm", "act", "pool", "elem", "move")]
    v += [fl.sum(), by.sum(), len(x)]
    G.append(v)
G = np.array(G)
print("max node flops", G[:, 8].max(), flush=True)
Fi = np.array([sum(c * G[gi] for gi, c in it) for it in ds.items])
fl_tot, by_tot = Fi[:, 8] + 1, Fi[:, 9] + 1
X = np.column_stack([Fi[:, 0:4] / fl_tot[:, None], Fi[:, 4:9 - 0][:, :5] / by_tot[:, None], np.log(fl_tot), np.log(by_tot),
                     np.log(Fi[:, 10] + 1), np.log(np.array([len(it) for it in ds.items]))])
print("X", X.shape, flush=True)
t1 = time.time(); heads = head_data(pred.model, ds.graphs, 0); print("heads", round(time.time() - t1), "s", flush=True)
y = ds.y; n = len(y)
ALPHAS = [1.0, 3.0, 10.0, 30.0, 100.0]

def ridge_choose(Xk, r):
    mu, sd = Xk.mean(0), Xk.std(0); ok = sd > 1e-9
    Z = (Xk[:, ok] - mu[ok]) / sd[ok]
    rc = r - r.mean()
    best = ("none", np.abs(r - r.mean()).mean(), None)  # a constant is already in the adaptation's scale
    for a in ALPHAS:
        H = Z @ np.linalg.solve(Z.T @ Z + a * np.eye(Z.shape[1]), Z.T)
        h = np.diag(H) + 1.0 / len(r)
        loo = (rc - H @ rc) / (1 - h)
        e = np.abs(loo).mean()
        if e < best[1]:
            best = (a, e, None)
    if best[0] == "none":
        return "none", lambda Xt: np.zeros(len(Xt))
    a = best[0]
    w = np.linalg.solve(Z.T @ Z + a * np.eye(Z.shape[1]), Z.T @ rc)
    return a, lambda Xt: ((Xt[:, ok] - mu[ok]) / sd[ok]) @ w

def m(p, yy):
    rel = np.abs(p / yy - 1); return 100 * (rel <= .1).mean(), 100 * rel.mean()

shots = [int(v) for v in sys.argv[1].split(",")]
res = {}
for k in shots:
    for s in range(5):
        t1 = time.time()
        pick = np.random.RandomState(s).choice(n, k, replace=False); rest = np.setdiff1d(np.arange(n), pick)
        items = [ds.items[i] for i in pick]
        ad = adapt(pred.model, ds.graphs, items, y[pick], grain="model")
        mu_rest, _ = spread(np.log(np.maximum(_items_times(ad.graph_times(heads), [ds.items[i] for i in rest]), 1e-12)))
        base = m(np.exp(mu_rest), y[rest])
        # out-of-fold residuals of the adaptation at its chosen lambda, on the k samples only
        oof = np.zeros(k)
        for test in _folds(k, 0):
            fit = np.setdiff1d(np.arange(k), test)
            adf = adapt(pred.model, ds.graphs, [items[i] for i in fit], y[pick][fit], lambdas=(ad.lam,), cross_validate=False, grain="model")
            sub_heads = heads  # full heads: graph_times over every graph
            mu_t, _ = spread(np.log(np.maximum(_items_times(adf.graph_times(sub_heads), [items[i] for i in test]), 1e-12)))
            oof[test] = np.log(y[pick][test]) - mu_t
        a, f = ridge_choose(X[pick], oof)
        corr = m(np.exp(mu_rest + f(X[rest])), y[rest])
        res.setdefault(k, []).append((base, corr, a, ad.lam))
        print(f"k={k} seed {s}: base {base[0]:.1f}% / {base[1]:.1f}  resid-ridge {corr[0]:.1f}% / {corr[1]:.1f}  alpha {a} lam {ad.lam}  {time.time() - t1:.0f} s", flush=True)
    v = np.array([[r[0][0], r[0][1], r[1][0], r[1][1]] for r in res[k]])
    print(f"k={k} MEAN base {v[:,0].mean():.1f}% MAPE {v[:,1].mean():.1f} | resid-ridge {v[:,2].mean():.1f}% MAPE {v[:,3].mean():.1f}", flush=True)
pickle.dump(res, open(f"/tmp/i20d/res_{sys.argv[1]}.pkl", "wb"))
