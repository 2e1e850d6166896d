# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, warnings
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[2])); sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import torch; torch.set_num_threads(1)
import predict_arm as PA
from gapp_tui.predict.predictor import Predictor, default_predictor_path
from gapp_tui.predict.samples import totals_dataset, totals_features_cache
from gapp_tui.predict.tables import device_tables
from gapp_tui.predict.adapt import head_data, bases
t0=time.time()
pred = Predictor.load(str(default_predictor_path()))
rows = device_tables()[PA.JETSON]
known = PA._known_left_out('benchmarks/results/predict_arm.json')
keep = [r for r in rows if (r["model"], "x".join(map(str, r["input_shape"]))) not in known]
ds = totals_dataset(keep, cache=totals_features_cache(), item_timeout_s=300)
print('ds', len(ds.y), time.time()-t0, flush=True)
heads = head_data(pred.model, ds.graphs, 0)
print('heads', time.time()-t0, flush=True)
b16 = bases(pred.model, 16, 0); b32 = bases(pred.model, 32, 0)
pickle.dump(dict(items=ds.items, y=ds.y, model=ds.model, heads=heads, b16=b16, b32=b32,
                 flops=PA._flops(ds)), open('/tmp/exp/jetson.pkl','wb'))
print('done', time.time()-t0)
