# Issue 20 experiment (not a benchmark of the release): run from /tmp/i20d with PYTHONPATH=<repo>; the features
# cache and the multi-device base lived in /tmp (arm_features_snap.pt, multi_nojetson_nb_m3_2500.pt) and are not shipped.
import sys, time, warnings, pickle
sys.path.insert(0, "/work/wt/i20d/benchmarks"); sys.path.insert(0, "/work/wt/i20d")
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(1)
import predict_arm as PA
from gapp_tui.predict.predictor import Predictor, default_predictor_path
from gapp_tui.predict.samples import totals_dataset
from gapp_tui.predict.tables import device_tables
from gapp_tui.predict.adapt import adapt, head_data, _items_times
from gapp_tui.predict.interval import spread

t0 = time.time()
ship = Predictor.load(default_predictor_path())
multi = Predictor.load(sys.argv[2])
assert PA.JETSON not in (multi.training.get("outputs") or [])
rows = device_tables()[PA.JETSON]
known = PA._known_left_out("/work/wt/i20d/benchmarks/results/predict_arm.json")
keep = [r for r in rows if (r["model"], "x".join(map(str, r["input_shape"]))) not in known]
ds = totals_dataset(keep, cache="/tmp/i20d/arm_features.pt", item_timeout_s=300)
y = ds.y; n = len(y)
cache = {}
def heads(pred, name, o):
    if (name, o) not in cache:
        cache[(name, o)] = head_data(pred.model, ds.graphs, o)
    return cache[(name, o)]
def run(pred, name, pick, rest, outputs, **kw):
    ad = adapt(pred.model, ds.graphs, [ds.items[i] for i in pick], y[pick], outputs=outputs, grain="model", **kw)
    mu, _ = spread(np.log(np.maximum(_items_times(ad.graph_times(heads(pred, name, ad.output)), [ds.items[i] for i in rest]), 1e-12)))
    cv = ad.cv["candidates"][ad.cv["chosen"]]["mean_abs_log_error"]
    return mu, cv, ad
def m(mu, yy):
    rel = np.abs(np.exp(mu) / yy - 1); return 100 * (rel <= .1).mean(), 100 * rel.mean()
variants = sys.argv[3].split(",")
mo = list(range(len(multi.training.get("outputs"))))
res = {}
for k in [int(v) for v in sys.argv[1].split(",")]:
    for s in range(5):
        t1 = time.time()
        pick = np.random.RandomState(s).choice(n, k, replace=False); rest = np.setdiff1d(np.arange(n), pick)
        out = {}
        mu_s, cv_s, ad_s = run(ship, "ship", pick, rest, [0])
        out["shipped"] = m(mu_s, y[rest])
        if "rank32" in variants:
            mu_r, cv_r, _ = run(ship, "ship", pick, rest, [0], rank=32)
            out["rank32"] = m(mu_r, y[rest]); out["rank32|cv"] = m(mu_r if cv_r < cv_s else mu_s, y[rest])
        if "multi" in variants:
            mu_m, cv_m, ad_m = run(multi, "multi", pick, rest, mo)
            out["multi"] = m(mu_m, y[rest])
            out["avg(shipped,multi)"] = m((mu_s + mu_m) / 2, y[rest])
            out["choose by CV"] = m(mu_s if cv_s <= cv_m else mu_m, y[rest])
            w = np.exp(-cv_s / 0.02) / (np.exp(-cv_s / 0.02) + np.exp(-cv_m / 0.02))
            out["cv-weighted"] = m(w * mu_s + (1 - w) * mu_m, y[rest])
        res.setdefault(k, []).append(out)
        print(f"k={k} seed {s}: " + "  ".join(f"{a} {b[0]:.1f}/{b[1]:.1f}" for a, b in out.items()) + f"  {time.time() - t1:.0f} s", flush=True)
    for a in res[k][0]:
        v = np.array([r[a] for r in res[k]])
        print(f"k={k} MEAN {a:22s} within10 {v[:,0].mean():.1f} ± {v[:,0].std():.1f}  MAPE {v[:,1].mean():.1f}", flush=True)
pickle.dump(res, open(f"/tmp/i20d/res2_{sys.argv[1]}_{sys.argv[3]}.pkl", "wb"))
