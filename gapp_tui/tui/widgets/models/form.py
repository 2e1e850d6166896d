"""The model form: name (completing registry names and import paths), input, batch, classes, granularity."""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Select

from ....errors import BadInput
from ....zoo import ModelSpec, complete_model, parse_shape

GRANULARITY_CHOICES = [
    ("natural blocks", "natural"),
    ("stages", "stage"),
    ("single ops", "op"),
    ("2 groups", "2"),
    ("4 groups", "4"),
    ("8 groups", "8"),
    ("16 groups", "16"),
]


class ModelSuggester(Suggester):
    """Completes the model field: a registry name, or an import path of an installed module
    (:func:`gapp_tui.zoo.complete_model`). Listing a large package's callables reads its sources (a second
    or two the first time), so it runs in a thread: typing never waits for it."""

    def __init__(self) -> None:
        super().__init__(use_cache=True, case_sensitive=True)  # import paths are: Module:Class

    async def get_suggestion(self, value: str) -> str | None:
        try:
            found = await asyncio.to_thread(complete_model, value)
        except Exception:  # noqa: BLE001 -- a completion that fails is no completion, never a crash
            return None
        return found[0] if found and found[0] != value else None


class ModelForm(Vertical):
    """Fields of a ModelSpec; ``spec()`` turns them into one (BadInput on bad values)."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("Model", classes="field-label")
            yield Input(
                id="model-name",
                placeholder="resnet18, or package.module:callable",
                suggester=ModelSuggester(),
                tooltip="A torchvision model or package.module:callable of any installed package"
                        " (→ accepts the completion: modules, then callables after the colon). Enter traces.",
                compact=True,
            )
            trace = Button("Trace", id="trace", variant="primary", compact=True,
                           tooltip="Trace the model into blocks (t, or Enter in any field)")
            trace.can_focus = False  # Tab goes from the model to its size, where a typed value is wanted
            yield trace
        with Horizontal(classes="form-row"):
            yield Label("size", classes="field-label")
            yield Input(id="input-size", placeholder="auto", type="integer", compact=True,
                        tooltip="Square image size; empty: the model's natural size")
            yield Label("batch", classes="field-label")
            yield Input(id="batch-size", value="1", type="integer", compact=True, tooltip="Batch size")
            yield Label("classes", classes="field-label")
            yield Input(id="num-classes", value="1000", type="integer", compact=True, tooltip="Number of output classes")
            yield Label("shape", classes="field-label")
            yield Input(id="input-shape", placeholder="", compact=True,
                        tooltip="Full input shape (needed for package.module:callable models); empty: from size and batch")
            yield Select(GRANULARITY_CHOICES, id="granularity", value="natural", allow_blank=False, compact=True,
                         tooltip="How finely to cut the model into blocks")

    def fill(self, model: str, input_size: str, batch_size: int, num_classes: int, granularity: str) -> None:
        self.query_one("#model-name", Input).value = model
        self.query_one("#input-size", Input).value = input_size
        self.query_one("#batch-size", Input).value = str(batch_size)
        self.query_one("#num-classes", Input).value = str(num_classes)
        values = {v for _, v in GRANULARITY_CHOICES}
        select = self.query_one("#granularity", Select)
        if granularity not in values:
            select.set_options([*GRANULARITY_CHOICES, (f"{granularity} groups", granularity)])
        select.value = granularity

    def show_traced(self, spec) -> None:
        """After a trace: the size field holds the size traced (never a stale placeholder)."""
        if spec.input_shape is None and len(spec.shape) == 4 and spec.shape[-1] == spec.shape[-2]:
            self.query_one("#input-size", Input).value = str(spec.shape[-1])
        self.update_derived()

    def update_derived(self) -> None:
        """The shape field's placeholder: the shape the other fields give (``= 1,3,96,96``), or what is needed."""
        shape = self.query_one("#input-shape", Input)
        try:
            spec = self.spec()
        except (BadInput, ValueError):
            shape.placeholder = "1,3,H,W" if ":" in self.values()["model"] else ""
            return
        shape.placeholder = "= " + ",".join(map(str, spec.shape))

    def describes(self, spec, granularity: str) -> bool:
        """True when the fields give ``spec`` at ``granularity`` (tracing again would change nothing)."""
        try:
            mine = self.spec()
        except (BadInput, ValueError):
            return False
        return (mine.name, tuple(mine.shape), mine.num_classes, self.values()["granularity"]) == \
            (spec.name, tuple(spec.shape), spec.num_classes, str(granularity))

    def values(self) -> dict[str, str]:
        return {
            "model": self.query_one("#model-name", Input).value.strip(),
            "input_size": self.query_one("#input-size", Input).value.strip(),
            "batch_size": self.query_one("#batch-size", Input).value.strip(),
            "num_classes": self.query_one("#num-classes", Input).value.strip(),
            "input_shape": self.query_one("#input-shape", Input).value.strip(),
            "granularity": str(self.query_one("#granularity", Select).value),
        }

    def spec(self):
        """The ModelSpec the fields describe (raises BadInput naming the bad field)."""
        v = self.values()
        if not v["model"]:
            raise BadInput("no model given; type a name such as resnet18 (Tab completes) or package.module:callable")

        def number(key: str, label: str) -> int | None:
            if not v[key]:
                return None
            try:
                return int(v[key])
            except ValueError:
                raise BadInput(f"{label} {v[key]!r} is not a whole number") from None

        if ";" in v["input_shape"]:
            raise BadInput(f"input shape {v['input_shape']!r} names several inputs; models with several inputs are not"
                           " supported in the app yet (use gapp blocks, predict or measure with --input-shape once"
                           " per input)")
        batch = number("batch_size", "batch size")
        classes = number("num_classes", "number of classes")
        return ModelSpec(
            v["model"],
            batch_size=1 if batch is None else batch,
            num_classes=1000 if classes is None else classes,
            input_size=number("input_size", "input size"),
            input_shape=parse_shape(v["input_shape"]) if v["input_shape"] else None,
        )
