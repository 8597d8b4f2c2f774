"""Binding live objects to a spec's network names: `Network` and what `Spec.check` accepts.

Why a seam and not files: in a notebook the model is already in memory; writing it to a
folder (or a `build` function to a `.py` file) only so that causalspec can read it back
would cost time and disk and lose what is not saved (hooks, patched modules). A bound
network goes into the run's network cache as it is (`claims.networks.NetworkCache.bound`),
through `run.loading.bind_torch_network` / `bind_hf_network`; the spec's own `torch`/`hf`
line then only declares the network's name and kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from causalspec.diagnostics import did_you_mean
from causalspec.errors import UsageError
from causalspec.run.loading import (LoadedNetwork, bind_hf_network, bind_torch_network,
                                    import_user_function)
from causalspec.semantics.ir import NetworkIR, SpecIR


@dataclass(frozen=True)
class Network:
    """A live network to bind to a spec's network name in `Spec.check(networks=...)`.

    - an `hf` network: `Network(model, tokenizer=tokenizer)` (a transformers model and its
      tokenizer; the spec's `prompt`/`answer` templates are tokenized with it);
    - a `torch` network: `Network(module)` uses the spec's `encode`/`decode` hooks;
      `Network(module, encode=fn)` uses `fn` instead (`fn(values)` gets a dict of input name
      -> list of high-level values and returns the module's input batch, as a spec hook does).

    The module is used where it is (its device and dtype) and put in eval mode.
    A plain module, or a `(model, tokenizer)` tuple, is accepted in place of a `Network`.
    """

    module: Any
    tokenizer: Any = None
    encode: Callable[..., Any] | None = None
    decode: Callable[..., Any] | None = None


def network_kind(net: NetworkIR) -> str:
    """"hf" or "torch": the kind of network a spec declares (the one place the API reads it)."""
    return str(net.framework)


def as_network(value: Any) -> Network:
    """A `Network` from what a user may pass: a `Network`, a `(model, tokenizer)` pair, a module."""
    if isinstance(value, Network):
        return value
    if isinstance(value, tuple):
        if len(value) != 2:
            raise UsageError(f"a network given as a tuple must be (model, tokenizer), not {len(value)} items")
        return Network(value[0], tokenizer=value[1])
    return Network(value)


def bind_networks(ir: SpecIR, networks: Mapping[str, Any] | None) -> dict[str, LoadedNetwork]:
    """Spec network name -> the loaded network built from the live object bound to it.
    A name the spec does not declare, or an object of the wrong kind, is a `UsageError`."""
    bound: dict[str, LoadedNetwork] = {}
    for name, value in (networks or {}).items():
        if name not in ir.networks:
            hint = did_you_mean(name, list(ir.networks))
            raise UsageError(f"networks={{{name!r}: …}}: {ir.file} declares no network `{name}`"
                             + (f"; {hint}" if hint else f" (networks: {', '.join(ir.networks) or 'none'})"))
        bound[name] = _bind(ir, ir.networks[name], as_network(value))
    return bound


def _bind(ir: SpecIR, net: NetworkIR, live: Network) -> LoadedNetwork:
    from causalspec.run.loading import NetworkLoadError

    try:
        if network_kind(net) == "hf":
            if live.encode is not None or live.decode is not None:
                raise UsageError(f"network `{net.name}` is an hf network: its inputs come from the spec's prompt "
                                 "template and its tokenizer; encode/decode callables apply to torch networks")
            return bind_hf_network(net.name, live.module, live.tokenizer, net.model_class)
        if live.tokenizer is not None:
            raise UsageError(f"network `{net.name}` is a torch network: it has no tokenizer (its inputs come "
                             "from an encode hook); pass Network(module, encode=...) instead")
        base_dir = Path(ir.file).resolve().parent
        encode, encode_name = _hook(net, "encode", live.encode, base_dir)
        decode, decode_name = _hook(net, "decode", live.decode, base_dir)
        return bind_torch_network(net.name, live.module, encode, decode,
                                  hooks={"encode": encode_name, "decode": decode_name})
    except NetworkLoadError as exc:
        raise UsageError(str(exc)) from None


def _hook(net: NetworkIR, kind: str, given: Callable[..., Any] | None,
          base_dir: Path) -> tuple[Callable[..., Any] | None, str | None]:
    """(the hook, its name for messages): the callable passed in, else the spec's hook."""
    if given is not None:
        if not callable(given):
            raise UsageError(f"network `{net.name}`: {kind}= must be callable, not {type(given).__name__}")
        return given, f"{getattr(given, '__qualname__', type(given).__name__)} (passed in Python)"
    ref = getattr(net, kind)
    if ref is None:
        return None, None
    return import_user_function(ref.ref, base_dir, f"network `{net.name}` {kind} hook"), ref.ref
