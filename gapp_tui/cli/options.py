"""Options several commands share: each declared once, handed to a command as one object.

A command that takes a model writes one parameter, ``model_opts: ModelOptions = MODEL``;
:func:`option_groups` puts the group's options (``--batch-size`` ... ``--leaf``) in that place
of the command's signature, so typer shows them in ``--help`` as if they were written out, and
calls the command with the object the group builds from them. The SSH options work the same
way (``ssh: Optional[SSHOptions] = SSH``). The underscore spellings keep the seed's command
lines working (``--batch_size``, ``--num_classes``, ...).
"""

from __future__ import annotations

import functools
import getpass
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer

if TYPE_CHECKING:
    from ..ssh import SSHOptions
    from ..zoo import ModelSpec

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class OptionGroup:
    """Options declared once: ``name -> (annotation, typer.Option factory)``, built into one object."""

    build: Callable[..., Any]
    options: dict[str, tuple[Any, Callable[[], Any]]] = field(default_factory=dict)

    def without(self, *names: str) -> OptionGroup:
        """The group less some options (the build's defaults fill them)."""
        return OptionGroup(self.build, {k: v for k, v in self.options.items() if k not in names})

    def parameters(self) -> list[inspect.Parameter]:
        # a fresh typer.Option per command: typer keeps state on them
        return [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=factory(), annotation=ann)
                for name, (ann, factory) in self.options.items()]


def option_groups(fn: F) -> F:
    """Expand every parameter of ``fn`` whose default is an :class:`OptionGroup` into the group's options."""
    sig = inspect.signature(fn)
    groups: dict[str, OptionGroup] = {}
    params: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        if isinstance(p.default, OptionGroup):
            groups[p.name] = p.default  # its annotation may name a type imported only for type checkers
            params.extend(p.default.parameters())
        elif isinstance(p.annotation, str):  # typer reads the evaluated types from the signature
            params.append(p.replace(annotation=eval(p.annotation, fn.__globals__)))  # noqa: S307 (the module's own annotation)
        else:
            params.append(p)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, group in groups.items():
            kwargs[name] = group.build(**{opt: kwargs.pop(opt) for opt in group.options})
        return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]


# ----------------------------------------------------------------------------- the model

def opt_batch_size() -> Any:
    return typer.Option(1, "--batch-size", "--batch_size", "-b", help="Batch size (positive).")


def opt_num_classes() -> Any:
    return typer.Option(1000, "--num-classes", "--num_classes", help="Number of output classes.")


def opt_input_size() -> Any:
    return typer.Option(
        None, "--input-size", "--input_size", help="Square image size (default: 299 for inception_v3, else 224)."
    )


def opt_input_shape() -> Any:
    return typer.Option(
        None, "--input-shape", "--input_shape",
        help="Input shape, e.g. 1,3,32,32; one item's shape (3,32,32) takes the batch from --batch-size."
        " A model whose forward takes several inputs: give it once per input, in forward's order"
        " (--input-shape 3,224,224 --input-shape 3,224,224), or one value with ';' between shapes.",
    )


def opt_input_dtype() -> Any:
    return typer.Option(
        None, "--input-dtype", help="Input dtype: float32 (default), int64 for token ids, float16, ..."
        " Several inputs: one dtype for all, or one per input (repeated, or float32,int64).",
    )


def opt_hf_config() -> Any:
    return typer.Option(
        None, "--hf-config",
        help="Hugging Face configuration for transformers:AutoModel and the like: a shipped name"
        " (bert-base-uncased, ...), type:field=value,... or a config.json. Random weights, no download.",
    )


def opt_capture() -> Any:
    return typer.Option(
        "auto", "--capture",
        help="Front end: auto (torch.fx with automatic leaves, torch.export when fx cannot trace), fx or export.",
    )


def opt_granularity() -> Any:
    return typer.Option(
        "natural", "--granularity", "-g",
        help="natural (network's own blocks), stage, op (one op per block), or N blocks of balanced FLOPs.",
    )


def opt_leaf() -> Any:
    return typer.Option(None, "--leaf", help="Module class name or path torch.fx must not trace into (repeatable).")


@dataclass(frozen=True)
class ModelOptions:
    """How a command line describes the model's input and its capture."""

    batch_size: int = 1
    num_classes: int = 1000
    input_size: Optional[int] = None
    input_shape: Optional[list[str]] = None
    input_dtype: Optional[list[str]] = None
    hf_config: Optional[str] = None
    capture: str = "auto"
    granularity: str = "natural"
    leaf: Optional[list[str]] = None

    @property
    def leaves(self) -> tuple[str, ...]:
        return tuple(self.leaf or ())

    def spec(self, model: str) -> ModelSpec:
        """A ModelSpec of ``model`` (BadInput on anything invalid)."""
        from ..zoo import ModelSpec, parse_dtypes, parse_shapes  # slow (torch): only commands that take a model pay for it

        shapes = parse_shapes(_listed(self.input_shape)) if self.input_shape else None
        dtypes = parse_dtypes(_listed(self.input_dtype)) if self.input_dtype else ()
        return ModelSpec(model, batch_size=self.batch_size, num_classes=self.num_classes, input_size=self.input_size,
                         input_shape=shapes[0] if shapes else None, more_shapes=shapes[1:] if shapes else (),
                         input_dtype=dtypes[0] if dtypes else None, more_dtypes=dtypes[1:],
                         hf_config=self.hf_config, capture=self.capture)


def _listed(value: str | list[str]) -> list[str]:
    """An option given once (a string, from code) or repeated (a list, from the command line) as a list."""
    return [value] if isinstance(value, str) else list(value)


MODEL = OptionGroup(ModelOptions, {
    "batch_size": (int, opt_batch_size),
    "num_classes": (int, opt_num_classes),
    "input_size": (Optional[int], opt_input_size),
    "input_shape": (Optional[list[str]], opt_input_shape),
    "input_dtype": (Optional[list[str]], opt_input_dtype),
    "hf_config": (Optional[str], opt_hf_config),
    "capture": (str, opt_capture),
    "granularity": (str, opt_granularity),
    "leaf": (Optional[list[str]], opt_leaf),
})


# ----------------------------------------------------------------------------- SSH

def opt_host(required: bool = False) -> Any:
    return typer.Option(
        ... if required else None, "--host", "-H",
        help="Measure on this device over SSH: [user@]host[:port] (or a Host alias of ~/.ssh/config).",
        show_default=False,
    )


def opt_port() -> Any:
    return typer.Option(None, "--port", "-p", help="SSH port (default: from the target, ~/.ssh/config, else 22).", show_default=False)


def opt_identity() -> Any:
    return typer.Option(None, "--identity", "-i", help="Private key file to log in with (only this key is tried).", show_default=False)


def opt_remote_python() -> Any:
    return typer.Option("python3", "--remote-python", help="Python on the device (it needs torch; nothing else).")


def opt_remote_tmp() -> Any:
    return typer.Option(None, "--remote-tmp", help="Directory on the device for the private temporary directory (default: $TMPDIR or /tmp).", show_default=False)


def opt_known_hosts() -> Any:
    return typer.Option(None, "--known-hosts", help="known_hosts file (default: ~/.ssh/known_hosts or UserKnownHostsFile).", show_default=False)


def opt_ssh_config() -> Any:
    return typer.Option(None, "--ssh-config", help="OpenSSH client config (default: ~/.ssh/config).", show_default=False)


def opt_accept_new_host_key() -> Any:
    return typer.Option(
        False, "--accept-new-host-key",
        help="Record the key of a host seen for the first time (like ssh's accept-new); a changed key is still refused.",
    )


def opt_connect_timeout() -> Any:
    return typer.Option(10.0, "--connect-timeout", help="Seconds to wait for the TCP connection, the SSH handshake and authentication.")


def ssh_options(host: str, port: int | None = None, identity: Path | None = None, remote_python: str = "python3",
                remote_tmp: str | None = None, known_hosts: Path | None = None, ssh_config: Path | None = None,
                accept_new_host_key: bool = False, connect_timeout: float | None = 10.0) -> SSHOptions:
    """The SSH options of one command line (checked: BadInput on a bad port, timeout or target)."""
    from ..ssh import SSHOptions  # slow (paramiko): only commands that reach a device pay for it

    return SSHOptions(
        host=host or "", port=port, identity=str(identity) if identity else None,
        known_hosts=str(known_hosts) if known_hosts else None, ssh_config=str(ssh_config) if ssh_config else None,
        accept_new_host_key=accept_new_host_key, connect_timeout=connect_timeout, remote_python=remote_python,
        remote_tmp=remote_tmp, password_prompt=_password_prompt(),
    ).check()


def _password_prompt() -> Callable[[str], str] | None:
    """A password is asked only of a person at a terminal, and never kept."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    return getpass.getpass


def _ssh_if_host(host: str | None, **options: Any) -> SSHOptions | None:
    return ssh_options(host, **options) if host else None


_SSH_REST: dict[str, tuple[Any, Callable[[], Any]]] = {
    "port": (Optional[int], opt_port),
    "identity": (Optional[Path], opt_identity),
    "remote_python": (str, opt_remote_python),
    "remote_tmp": (Optional[str], opt_remote_tmp),
    "known_hosts": (Optional[Path], opt_known_hosts),
    "ssh_config": (Optional[Path], opt_ssh_config),
    "accept_new_host_key": (bool, opt_accept_new_host_key),
    "connect_timeout": (float, opt_connect_timeout),
}

#: ``--host`` and the rest; None without ``--host`` (the command runs here)
SSH = OptionGroup(_ssh_if_host, {"host": (Optional[str], opt_host), **_SSH_REST})
#: ``--host`` required
SSH_TO = OptionGroup(ssh_options, {"host": (str, lambda: opt_host(required=True)), **_SSH_REST})
