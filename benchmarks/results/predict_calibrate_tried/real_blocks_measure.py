import sys, os, time
sys.path.insert(0, '/work/main')
import warnings; warnings.simplefilter('ignore')
import torch
torch.set_num_threads(2)
from gapp_tui.measure.engine import MeasureConfig, measure
from gapp_tui.predict.calibrate import CALIBRATION_PRECISION
from gapp_tui.store import Store
from gapp_tui.zoo import ModelSpec
MODELS = ['alexnet', 'vgg11', 'inception_v3', 'swin_t', 'timm.models:ghostnet_100', 'timm.models:rexnet_100',
          'timm.models:mixnet_s', 'timm.models:poolformer_s12', 'timm.models:mobilevit_xs', ]
st = Store(os.environ.get('DB', '/tmp/gapp-real.sqlite') + '')
cfg = MeasureConfig(modes=('standalone',), threads=2, full=False, precision=CALIBRATION_PRECISION)
for m in MODELS:
    t0 = time.time()
    try:
        res = measure(ModelSpec(m, input_size=128), cfg, store=st, progress=None)
        print(m, len(res.rows['standalone']), f'{time.time()-t0:.0f}s', flush=True)
    except Exception as e:
        print(m, 'FAILED', type(e).__name__, str(e)[:100], flush=True)
