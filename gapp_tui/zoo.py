"""ModelSpec and the model registry.

A ModelSpec names a model (any torchvision classification model, or a
``package.module:callable`` import path) and the input it is run on. Models are
always randomly initialised: nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

from .errors import BadInput, closest

#: models whose natural input is 299x299 (everything else is 224x224)
_INPUT_299 = {"inception_v3"}
#: models built without auxiliary heads (those only matter in training)
_NO_AUX = {"inception_v3", "googlenet"}
#: models whose constructor must be told the image size
_IMAGE_SIZE_KW = {"vit": "image_size", "maxvit": "input_size"}


@lru_cache(maxsize=1)
def model_names() -> tuple[str, ...]:
    """All torchvision classification models, sorted."""
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


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


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What to build and what to feed it.

    ``name`` is a torchvision model name or ``package.module:callable``.
    ``input_shape`` is the full input shape including the batch dimension; when
    not given it is ``(batch_size, 3, S, S)`` with S the model's natural size
    (or ``input_size`` when given).
    """

    name: str
    batch_size: int = 1
    num_classes: int = 1000
    input_size: int | None = None
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise BadInput(f"batch size {self.batch_size!r} is not valid; give a positive integer")
        if not isinstance(self.num_classes, int) or self.num_classes <= 0:
            raise BadInput(f"number of classes {self.num_classes!r} is not valid; give a positive integer")
        if self.input_size is not None and self.input_size <= 0:
            raise BadInput(f"input size {self.input_size!r} is not valid; give a positive integer such as 224")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", parse_shape(self.input_shape))
        if not is_import_path(self.name) and self.name not in model_names():
            raise BadInput(
                f"unknown model {self.name!r}{closest(self.name, model_names())}"
                " (see `gapp models`, or give package.module:callable)"
            )

    @property
    def family(self) -> str:
        return family_of(self.name)

    @property
    def shape(self) -> tuple[int, ...]:
        """The input tensor's shape, batch dimension first."""
        if self.input_shape is not None:
            if is_import_path(self.name):
                return self.input_shape
            # a registry model: the batch dimension follows --batch-size
            return (self.batch_size, *self.input_shape[1:])
        size = self.input_size or (299 if self.name in _INPUT_299 else 224)
        return (self.batch_size, 3, size, size)

    def label(self) -> str:
        """Short text naming the model and its input, for tables and file names."""
        return f"{self.name} {'x'.join(map(str, self.shape))}"

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

    def example_input(self, device: str | torch.device = "cpu", seed: int = 0) -> torch.Tensor:
        """A reproducible random input of :attr:`shape`."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(self.shape, generator=gen)
        return x.to(device)

    def _construct(self) -> nn.Module:
        if is_import_path(self.name):
            return _import_callable(self.name)()
        import torchvision

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
            return construct()
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


def _import_callable(path: str):
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise BadInput(f"import path {path!r} is malformed; give package.module:callable")
    # like `python -m` and uvicorn: modules in the current directory are importable
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"import path {path!r}: module {module_name!r} cannot be imported ({exc})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BadInput(f"import path {path!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BadInput(f"import path {path!r} names a {type(obj).__name__}, not a callable returning a module")
    return obj
