# Issue 20 experiment (not a benchmark of the release): real blocks of 9 families outside the test set (alexnet, vgg11,
# inception_v3, swin_t, timm ghostnet_100, rexnet_100, mixnet_s, poolformer_s12, mobilevit_xs; 128 px, 2 threads, labels
# = geometric mean of two passes that agreed for 93.7 %) added to the probes of runs 11-13, scored on the test
# labels of runs 11 and 12. Measured with real_blocks_measure.py (DB=...) into /tmp/gapp-real{2,3}.sqlite (not kept).
import sys, os, sqlite3
sys.path.insert(0, '/work/main')
import warnings; warnings.simplefilter('ignore')
import numpy as np, torch
torch.set_num_threads(1)
from gapp_tui.predict.adapt import adapt, adapted_member_times
from gapp_tui.predict import probes
from gapp_tui.predict.dataset import model_graphs
from gapp_tui.predict.predictor import Predictor, default_predictor_path
base = Predictor.load(str(default_predictor_path()))
pg = probes.graphs()
def load(p, pr=None):
    c = sqlite3.connect(p); q = "" if pr is None else (" and model like '%probes%'" if pr else " and model not like '%probes%'")
    return {(m, int(b)): t for m, b, t in c.execute(f"select model, block, min_ms from measurements where mode='standalone'{q}")}
gc = {}
def graphs(keys):
    for m in {k[0] for k in keys}:
        if m not in gc:
            gc[m] = {g.block_index: g for g in model_graphs(m, 1, 128)[0]}
    return [gc[m][b] for m, b in keys]
r2, r3 = load('/tmp/gapp-real2.sqlite'), load('/tmp/gapp-real3.sqlite')
rk = sorted(k for k in r2 if k in r3 and k[1] in gc.get(k[0], {}) or k in r3)
RG = graphs(rk); ry = np.sqrt(np.array([r2[k] * r3[k] for k in rk]))
T = {r: load(f'/tmp/gapp-pc{r}.sqlite', False) for r in ('11', '12')}
tk = sorted(T['11']); TG = graphs(tk)
Y = {r: np.array([T[r][k] for k in tk]) for r in T}
allg = list(pg) + RG
w = lambda p, y: 100 * (np.abs(p / y - 1) <= .1).mean()
for pr in ('13', '11', '12'):
    P = {k[1]: v for k, v in load(f'/tmp/gapp-pc{pr}.sqlite', True).items()}
    pk = sorted(P)
    for name, items, ys in (('probes only', [[(i, 1)] for i in pk], [P[i] for i in pk]),
                            ('probes + real', [[(i, 1)] for i in pk] + [[(len(pg) + j, 1)] for j in range(len(rk))], [P[i] for i in pk] + list(ry))):
        ad = adapt(base.model, allg, items, ys, grain='block', threads=2)
        p = np.exp(np.log(adapted_member_times(base.model, ad, TG)).mean(0))
        c = ad.cv['candidates'][ad.cv['chosen']]
        print(f"probes of run {pr}, {name:14s} ({ad.cv['chosen']}, cv within10 {c['within10']:.0f}): " + ' '.join(f"labels {r}: {w(p, Y[r]):.1f}" for r in Y), flush=True)
