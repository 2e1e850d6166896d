"""ModelSpec and the model registry.

A ModelSpec names a model (any torchvision classification model, or a
``package.module:callable`` import path: timm, pytorchcv, Hugging Face with
``hf_config``, the user's own code) and the input it is run on. Models are
always randomly initialised: nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from . import hf
from .capture import FRONT_ENDS
from .errors import BadInput, closest
from .import_paths import complete, resolve, submodules

#: models whose natural input is 299x299 (everything else is 224x224)
_INPUT_299 = {"inception_v3"}
#: models built without auxiliary heads (those only matter in training)
_NO_AUX = {"inception_v3", "googlenet"}
#: models whose constructor must be told the image size
_IMAGE_SIZE_KW = {"vit": "image_size", "maxvit": "input_size"}
#: input dtypes a model may take (--input-dtype)
INPUT_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32")
#: integer inputs (token ids) are drawn from 0 .. TOKEN_IDS - 1, valid for any vocabulary of that size or more
TOKEN_IDS = 100
#: the input rank of a model whose first layer is one of these (Conv1d: batch, channels, length; ...)
_RANK_OF_FIRST = ((nn.Conv1d, 3), (nn.Conv2d, 4), (nn.Conv3d, 5), (nn.ConvTranspose1d, 3),
                  (nn.ConvTranspose2d, 4), (nn.ConvTranspose3d, 5), (nn.Embedding, 2), (nn.EmbeddingBag, 2))


@lru_cache(maxsize=1)
def model_names() -> tuple[str, ...]:
    """All torchvision classification models, sorted."""
    import torchvision  # slow (torchvision)

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def complete_model(prefix: str, limit: int = 50) -> list[str]:
    """What the model field may become: registry names first (``res`` -> ``resnet18``, any case), then the
    import paths of installed modules that extend ``prefix`` (``tim`` -> ``timm``: packages first, ``timm.models:vit_t`` ->
    ``timm.models:vit_tiny_patch16_224``; :func:`gapp_tui.import_paths.complete`, which imports nothing)."""
    prefix = prefix.strip()
    if not prefix:
        return []
    low = prefix.lower()
    if "." in prefix or ":" in prefix:
        return complete(prefix, limit)
    names = [n for n in model_names() if n.lower().startswith(low)]
    # a top-level name: packages first (``tim`` -> ``timm`` before the standard library's ``time``)
    tops = sorted(complete(prefix, limit), key=lambda m: (not submodules(m), m))
    return (names + tops)[:limit]


def family_of(name: str) -> str:
    """A model name's family: its alphabetic prefix (``resnet18`` -> ``resnet``).

    Import paths are their own family: the module path before the colon.
    """
    if ":" in name:
        return name.split(":", 1)[0]
    m = re.match(r"(wide_)?[a-z]+", name)
    return m.group(0) if m else name


def families() -> dict[str, list[str]]:
    """Registry families and their members, in name order."""
    out: dict[str, list[str]] = {}
    for name in model_names():
        out.setdefault(family_of(name), []).append(name)
    return out


def is_import_path(name: str) -> bool:
    return ":" in name


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """Parse ``1,3,224,224`` / ``1x3x224x224`` / ``(1, 3, 224, 224)`` into positive ints."""
    if not isinstance(text, str):
        dims = tuple(int(d) for d in text)
    else:
        parts = [p for p in re.split(r"(?<=\d)x(?=\d)|[,\s()\[\]]+", text.strip()) if p]
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise BadInput(
                f"input shape {text!r} does not parse; give positive integers such as 1,3,224,224"
            ) from None
    if not dims or any(d <= 0 for d in dims):
        raise BadInput(f"input shape {text!r} is not valid; give positive integers such as 1,3,224,224")
    return dims


def parse_shapes(texts: str | Sequence[str | Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """The shapes of a model's inputs, in ``forward``'s order: ``3,224,224;3,224,224`` (``;`` between inputs),
    a list of such texts (``--input-shape`` given once per input) or a list of shapes."""
    items = [texts] if isinstance(texts, str) else list(texts)
    if items and all(hasattr(d, "__index__") for d in items):  # ints, numpy's too
        items = [tuple(items)]  # one shape given as a sequence of ints
    shapes: list[tuple[int, ...]] = []
    for item in items:
        parts = item.split(";") if isinstance(item, str) else [item]
        for part in parts:
            if isinstance(part, str) and not part.strip():
                raise BadInput(f"input shapes {item!r} hold an empty shape; give one shape per input, such as"
                               " 3,224,224;3,224,224")
            shapes.append(parse_shape(part))
    return tuple(shapes)


def parse_dtypes(texts: str | Sequence[str] | None) -> tuple[str, ...]:
    """The input dtypes: one for every input (``float32``) or one per input (``float32,int64``, or
    ``--input-dtype`` given once per input)."""
    if texts is None:
        return ()
    items = [texts] if isinstance(texts, str) else list(texts)
    out = tuple(d.strip() for item in items for d in re.split(r"[,;]", item))
    for d in out:
        if d not in INPUT_DTYPES:
            raise BadInput(f"input dtype {d!r} is not valid; give one of {', '.join(INPUT_DTYPES)}")
    return out


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What to build and what to feed it.

    ``name`` is a torchvision model name or ``package.module:callable``.
    ``input_shape`` is the full input shape including the batch dimension, or
    the shape of one item (the model's input rank minus one: ``3,224,224``), to
    which :meth:`resolved` adds ``batch_size`` once the model is built; when not
    given it is ``(batch_size, 3, S, S)`` with S the model's natural size (or
    ``input_size``), the size an import-path model declares (timm's
    ``pretrained_cfg``, pytorchcv's ``in_size``) or the configuration's input
    (``hf_config``). ``input_dtype``: ``int64`` for token ids; the default is
    float32 (int64 for Hugging Face text models). ``capture``: the front end
    (:mod:`gapp_tui.capture`).

    A model whose ``forward`` takes several inputs gets one shape per input:
    ``input_shape`` is the first (a spec of one input is what it always was)
    and ``more_shapes`` the others, in ``forward``'s order; ``input_shape`` may
    also be given as ``"3,224,224;3,224,224"`` or a list of shapes, which is
    split so. When the first is one item's shape, every shape gets the batch
    dimension; else all are full shapes. ``more_dtypes``: the others' dtypes
    when they differ (``input_dtype="float32,int64"`` splits so); otherwise
    ``input_dtype`` holds for every input.
    """

    name: str
    batch_size: int = 1
    num_classes: int = 1000
    input_size: int | None = None
    input_shape: tuple[int, ...] | None = None
    input_dtype: str | None = None
    hf_config: str | None = None
    capture: str = "auto"
    more_shapes: tuple[tuple[int, ...], ...] = ()
    more_dtypes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise BadInput(f"batch size {self.batch_size!r} is not valid; give a positive integer")
        if not isinstance(self.num_classes, int) or self.num_classes <= 0:
            raise BadInput(f"number of classes {self.num_classes!r} is not valid; give a positive integer")
        if self.input_size is not None and self.input_size <= 0:
            raise BadInput(f"input size {self.input_size!r} is not valid; give a positive integer such as 224")
        self._split_inputs()  # validates the dtypes too (parse_dtypes)
        if self.capture not in FRONT_ENDS:
            raise BadInput(f"capture front end {self.capture!r} is not valid; give one of {', '.join(FRONT_ENDS)}")
        if not is_import_path(self.name) and self.name not in model_names():
            raise BadInput(
                f"unknown model {self.name!r}{closest(self.name, model_names())}"
                " (see `gapp models`, or give package.module:callable)"
            )
        if self.hf_config is not None and not is_import_path(self.name):
            raise BadInput(
                f"--hf-config {self.hf_config!r} is for Hugging Face import paths such as transformers:AutoModel,"
                f" not the registry model {self.name!r}"
            )
        if self.more_shapes and not is_import_path(self.name):
            raise BadInput(f"the registry model {self.name!r} takes one input; give one --input-shape"
                           f" (several are for import paths whose forward takes several)")

    def _split_inputs(self) -> None:
        """Several inputs given as ``input_shape`` (``3,224,224;3,224,224`` or a list of shapes) or ``input_dtype``
        (``float32,int64``): the first stays in ``input_shape``/``input_dtype``, the others go to ``more_shapes``/
        ``more_dtypes``, so a spec of one input is what it always was."""
        set_ = object.__setattr__
        more = tuple(parse_shape(s) for s in self.more_shapes)
        if self.input_shape is not None:
            shapes = parse_shapes(self.input_shape)
            if len(shapes) > 1 and more:
                raise BadInput("give the inputs' shapes either all in input_shape or the first there and the others"
                               " in more_shapes, not both")
            set_(self, "input_shape", shapes[0])
            more = more or shapes[1:]
        elif more:
            raise BadInput("more_shapes needs input_shape: give every input's shape (--input-shape once per input)")
        set_(self, "more_shapes", more)
        dtypes = parse_dtypes(self.input_dtype) + parse_dtypes(self.more_dtypes)
        if len(dtypes) > 1:
            if len(dtypes) != 1 + len(more):
                raise BadInput(f"{len(dtypes)} input dtypes ({', '.join(dtypes)}) for {1 + len(more)} input"
                               f"{'s' if more else ''}; give one dtype for all inputs or one per input")
            set_(self, "input_dtype", dtypes[0])
            set_(self, "more_dtypes", dtypes[1:])
        else:
            set_(self, "more_dtypes", ())
            set_(self, "input_dtype", dtypes[0] if dtypes else None)

    @property
    def family(self) -> str:
        return family_of(self.name)

    @property
    def shape(self) -> tuple[int, ...]:
        """The input tensor's shape, batch dimension first."""
        if self.input_shape is not None:
            if is_import_path(self.name):
                return self.input_shape
            # a registry model (rank 4): the batch dimension follows --batch-size
            return (self.batch_size, *self.input_shape[-3:])
        if self.hf_config is not None and not self.input_size:
            return (self.batch_size, *hf.natural_input(self.hf_config)[0])
        size = self.input_size or (299 if self.name in _INPUT_299 else 224)
        return (self.batch_size, 3, size, size)

    @property
    def n_inputs(self) -> int:
        """How many tensors the model's ``forward`` is given (1 unless several shapes were given)."""
        return 1 + len(self.more_shapes)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Every input's shape, in ``forward``'s order (the first is :attr:`shape`)."""
        return (tuple(self.shape), *self.more_shapes)

    @property
    def dtypes(self) -> tuple[torch.dtype, ...]:
        """Every input's dtype: one per input when given so, else :attr:`dtype` for all."""
        if self.more_dtypes:
            return (self.dtype, *(getattr(torch, d) for d in self.more_dtypes))
        return (self.dtype,) * self.n_inputs

    @property
    def shape_text(self) -> str:
        """The input shapes as stored rows and setting keys write them: ``1x3x224x224``, ``+`` between inputs."""
        return "+".join("x".join(map(str, s)) for s in self.shapes)

    def inputs_doc(self) -> dict[str, Any]:
        """``input_shapes`` and ``input_dtypes`` of every input for ``--json``; empty for a model of one input
        (whose ``input_shape``/``input_dtype`` say it all)."""
        if self.n_inputs == 1:
            return {}
        return {"input_shapes": [list(s) for s in self.shapes],
                "input_dtypes": [str(d).replace("torch.", "") for d in self.dtypes]}

    def require_one_input(self, what: str) -> None:
        """BadInput naming ``what`` when this spec has several inputs (where only one is supported yet)."""
        if self.n_inputs > 1:
            raise BadInput(f"{what} is not supported yet for a model with {self.n_inputs} inputs ({self.name});"
                           " gapp blocks, features, predict, measure and partition take such a model")

    @property
    def dtype(self) -> torch.dtype:
        """The input tensor's dtype."""
        name = self.input_dtype
        if name is None:
            name = hf.natural_input(self.hf_config)[1] if self.hf_config is not None else "float32"
        return getattr(torch, name)

    def resolved(self, model: nn.Module) -> ModelSpec:
        """This spec with the input made explicit from the built model (import paths only).

        A shape of one item (the model's input rank minus one) gets the batch
        dimension; with no shape at all, the input the model declares (timm's
        ``pretrained_cfg['input_size']``, pytorchcv's ``in_size``) is used.
        """
        if not is_import_path(self.name):
            return self
        if self.input_shape is not None:
            rank = input_rank(model)
            if rank is not None and len(self.input_shape) == rank - 1:
                # several inputs: all are one item's shapes when the first is (each gets the batch dimension)
                return dataclasses.replace(self, input_shape=(self.batch_size, *self.input_shape),
                                           more_shapes=tuple((self.batch_size, *s) for s in self.more_shapes))
            return self
        if self.input_size is None and self.hf_config is None:
            declared = declared_input(model)
            if declared is not None:
                return dataclasses.replace(self, input_shape=(self.batch_size, *declared))
        return self

    def label(self) -> str:
        """Short text naming the model and its input, for tables and file names."""
        return f"{self.name} {self.shape_text}"

    def to_dict(self) -> dict[str, Any]:
        """The fields a plan or a stage process needs to build this spec again (new fields only when set)."""
        doc: dict[str, Any] = {"name": self.name, "batch_size": self.batch_size, "num_classes": self.num_classes,
                               "input_size": self.input_size,
                               "input_shape": list(self.input_shape) if self.input_shape else None}
        for key, default in (("input_dtype", None), ("hf_config", None), ("capture", "auto")):
            if getattr(self, key) != default:
                doc[key] = getattr(self, key)
        if self.more_shapes:
            doc["more_shapes"] = [list(s) for s in self.more_shapes]
        if self.more_dtypes:
            doc["more_dtypes"] = list(self.more_dtypes)
        return doc

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """Construct the model, randomly initialised, in eval mode.

        ``device="meta"`` builds it without allocating parameter memory, which is
        how features of huge models are extracted.
        """
        if torch.device(device).type == "meta":
            model = _build_on_meta(self._construct)
        else:
            with torch.device(device):
                model = self._construct()
        if not isinstance(model, nn.Module):
            raise BadInput(
                f"{self.name!r} returned {type(model).__name__}, not a torch.nn.Module;"
                " the callable must return the model"
            )
        return model.eval()

    def example_input(self, device: str | torch.device = "cpu", seed: int = 0,
                      float_dtype: torch.dtype | None = None) -> torch.Tensor:
        """A reproducible random input of :attr:`shape` and :attr:`dtype`.

        Floating inputs are normal (in ``float_dtype`` when given: the dtype a
        measurement runs in); integer inputs (token ids) are uniform in
        ``0 .. TOKEN_IDS - 1``.
        """
        return self.example_inputs(device, seed, float_dtype)[0]

    def example_inputs(self, device: str | torch.device = "cpu", seed: int = 0,
                       float_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
        """One reproducible random tensor per input (:attr:`shapes`, :attr:`dtypes`), drawn from one generator
        in order: the first is :meth:`example_input`."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        for shape, dtype in zip(self.shapes, self.dtypes):
            if dtype.is_floating_point:
                x = torch.randn(shape, generator=gen).to(float_dtype or dtype)
            else:
                x = torch.randint(0, TOKEN_IDS, shape, generator=gen, dtype=dtype)
            out.append(x.to(device))
        return tuple(out)

    def _construct(self) -> nn.Module:
        if is_import_path(self.name):
            hf.offline()  # whatever the package, nothing is downloaded (timm and transformers read the hub's flag)
            factory = resolve(self.name)
            if isinstance(factory, nn.Module):  # the path names a model object
                return factory
            if self.hf_config is not None:
                return hf.build(factory, self.hf_config, self.name)
            if hf.needs_config(factory):
                raise BadInput(
                    f"{self.name} needs a configuration; give --hf-config (shipped: {', '.join(hf.config_names())};"
                    " or type:field=value,...; or a config.json)"
                )
            return factory()
        import torchvision  # slow (torchvision)

        kwargs: dict[str, object] = {"weights": None, "num_classes": self.num_classes}
        if self.name in _NO_AUX:
            kwargs["aux_logits"] = False
            kwargs["init_weights"] = True
        fam = family_of(self.name)
        if fam in _IMAGE_SIZE_KW and (self.input_size or self.input_shape):
            h, w = self.shape[-2:]
            kwargs[_IMAGE_SIZE_KW[fam]] = h if fam == "vit" else (h, w)
        return torchvision.models.get_model(self.name, **kwargs)


def _build_on_meta(construct):
    """Build with parameters and buffers on the meta device (no memory, no init cost).

    ``torch.device("meta")`` is tried first; a constructor that computes its
    configuration with tensors (RegNet) needs real tensors, so the fallback
    moves each parameter and buffer to meta as it is registered instead.
    """
    try:
        with torch.device("meta"):
            model = construct()
        if isinstance(model, nn.Module) and any(t.device.type != "meta" for t in [*model.parameters(), *model.buffers()]):
            model.to("meta")  # tensors made by legacy constructors (torch.LongTensor(...)) ignore the device
        return model
    except NotImplementedError:
        pass
    reg_param, reg_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def register_parameter(module, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        reg_param(module, name, param)

    def register_buffer(module, name, tensor, persistent=True):
        reg_buffer(module, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer
    try:
        return construct()
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = reg_param, reg_buffer


def input_rank(model: nn.Module) -> int | None:
    """The rank of the input the model's first layer takes (Conv2d: 4, Embedding: 2), or None when unknown."""
    for m in model.modules():
        for cls, rank in _RANK_OF_FIRST:
            if isinstance(m, cls):
                return rank
        if isinstance(m, (nn.Linear, nn.LayerNorm, nn.MultiheadAttention)):
            return None
    return None


def declared_input(model: nn.Module) -> tuple[int, ...] | None:
    """The input of one item a model says it takes: timm's ``pretrained_cfg``, pytorchcv's ``in_size``."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)) and len(cfg["input_size"]) == 3:
        return tuple(int(d) for d in cfg["input_size"])
    size = getattr(model, "in_size", None)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(d, int) for d in size):
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is not None:
            return (_input_channels(model, conv.in_channels), *size)
    return None


def _input_channels(model: nn.Module, first_conv: int) -> int:
    """The channels of the input: the first convolution's, unless the model's class says otherwise.

    A stem that rearranges the input before its first convolution (TResNet's space-to-depth turns 3
    channels into 48, i-RevNet's pads 3 to 6) gives that convolution a multiple of the input's channels;
    the class's ``in_channels=3`` default is then the input's. A first convolution with fewer channels, or
    not a multiple of it, is taken as it is (a model built with ``in_channels=1``). A model built with
    another ``in_channels`` *and* such a stem cannot be told apart: give it ``--input-shape``.
    """
    try:
        param = inspect.signature(type(model).__init__).parameters.get("in_channels")
    except (TypeError, ValueError):
        return first_conv
    default = getattr(param, "default", None)
    if isinstance(default, int) and not isinstance(default, bool) and 0 < default < first_conv \
            and first_conv % default == 0:
        return default
    return first_conv
